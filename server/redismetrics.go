package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/signgate/signgate/state"
)

// redisWatchEvery is how often the gateway looks at which Redis node is master.
const redisWatchEvery = time.Second

// redisMetrics are the shared state's own series: where its master is, how many
// failovers this instance saw, and its errors by kind.
type redisMetrics struct {
	errors   *prometheus.CounterVec
	topology atomic.Pointer[func() state.Topology]
}

var (
	redisMasterDesc = prometheus.NewDesc("signgate_redis_master",
		"1 for each Redis master serving this instance's shared state now (one server, the master Sentinel names, or every Cluster master), by address.",
		[]string{"addr"}, nil)
	redisFailoversDesc = prometheus.NewDesc("signgate_redis_failovers_total",
		"Redis masters this instance saw replaced since it started: a Sentinel promoting a replica, a Cluster replica taking over a master's slots.",
		nil, nil)
)

func newRedisMetrics(reg *prometheus.Registry) *redisMetrics {
	m := &redisMetrics{
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "signgate_redis_errors_total",
			Help: "Redis commands that failed, by kind: timeout, connection, readonly, moved (MOVED, ASK, TRYAGAIN), clusterdown, other.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.errors, m)
	return m
}

// watch has the series report s; called once, when the shared state is Redis.
func (m *redisMetrics) watch(s *state.Redis) {
	for _, kind := range state.ErrorKinds {
		m.errors.WithLabelValues(kind)
	}
	f := s.Topology
	m.topology.Store(&f)
}

// failed counts one failed Redis command of kind (state.RedisOptions.OnError).
func (m *redisMetrics) failed(kind string) { m.errors.WithLabelValues(kind).Inc() }

// current is the topology of the Redis watched, and false without one.
func (m *redisMetrics) current() (state.Topology, bool) {
	f := m.topology.Load()
	if f == nil {
		return state.Topology{}, false
	}
	return (*f)(), true
}

func (m *redisMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- redisMasterDesc
	ch <- redisFailoversDesc
}

func (m *redisMetrics) Collect(ch chan<- prometheus.Metric) {
	tp, ok := m.current()
	if !ok {
		return
	}
	for _, addr := range tp.Masters {
		ch <- prometheus.MustNewConstMetric(redisMasterDesc, prometheus.GaugeValue, 1, addr)
	}
	ch <- prometheus.MustNewConstMetric(redisFailoversDesc, prometheus.CounterValue, float64(tp.Failovers))
}

// logTopology logs where the shared state's masters are each time that changes, and
// each time looking fails or works again.
func logTopology(logger *slog.Logger) func(state.Topology) {
	return func(tp state.Topology) {
		if tp.Err != nil {
			logger.Warn("redis: cannot tell which node is master", "topology", tp.Kind, "masters", tp.Masters, "err", tp.Err)
			return
		}
		logger.Info("redis: masters", "topology", tp.Kind, "masters", tp.Masters, "failovers", tp.Failovers)
	}
}

// readyRedis is what /readyz says about Redis.
type readyRedis struct {
	Topology  string   `json:"topology"`
	Masters   []string `json:"masters"`
	Failovers int64    `json:"failovers"`
}

// writeReady answers /readyz with status and, when the shared state is Redis, where
// its master is now and how many failovers this instance saw:
// {"status":"ready","redis":{"topology":"sentinel","masters":["10.0.0.21:6379"],"failovers":1}}.
func (s *Server) writeReady(w http.ResponseWriter, code int, status string) {
	tp, ok := s.metrics.redis.current()
	if !ok {
		writeStatus(w, code, status)
		return
	}
	body, _ := json.Marshal(struct {
		Status string     `json:"status"`
		Redis  readyRedis `json:"redis"`
	}{status, readyRedis{Topology: tp.Kind, Masters: tp.Masters, Failovers: tp.Failovers}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
