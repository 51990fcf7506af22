package config

import (
	"testing"
	"time"
)

const cacheRoutesYAML = `daojia: {base_url: "http://127.0.0.1:9700", service_key: "k", service_secret: "s"}
upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
routes:
`

func TestCacheDefaults(t *testing.T) {
	cfg := mustParse(t, cacheRoutesYAML+`  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s}}
  - {name: api, match: "* /api/**", upstream: backend}
  - {name: empty, match: "GET /x", upstream: backend, cache: }
`)
	if c := cfg.Cache; c.MemoryBytes != 64<<20 || c.MaxEntryBytes != 1<<20 || c.LockTimeout != 10*time.Second {
		t.Errorf("cache section defaults: %+v", c)
	}
	if rc := cfg.Routes[0].Cache; !rc.Enabled || rc.Scope != "client" || rc.TTL != time.Minute {
		t.Errorf("routes[0].cache: %+v, want enabled, scope client, ttl 60s", rc)
	}
	if cfg.Routes[1].Cache.Enabled || cfg.Routes[2].Cache.Enabled {
		t.Error("a route without a cache section (or with an empty one) is cached")
	}
}

func TestCacheValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "routes that cannot be cached",
			yaml: cacheRoutesYAML + `  - {name: orders, match: "POST /api/orders", upstream: backend, cache: {ttl: 60s}}
  - {name: relay, match: "POST /daojia/**", daojia: relay, cache: {ttl: 60s}}
  - {name: events, match: "GET /api/events", upstream: backend, websocket: true, cache: {ttl: 60s}}
  - {name: callback, match: "* /callbacks/**", upstream: backend, verify: daojia-md5, cache: {ttl: 60s}}
`,
			want: []string{
				`routes[0].cache (line 5): only GET (and HEAD) answers are cached; this route's match "POST /api/orders" takes no GET`,
				`routes[1].cache (line 6): a daojia: relay route answers POSTs with 58到家's answers, which are not cached`,
				`routes[2].cache (line 7): a websocket route hands its GETs over to tunnels, whose answers are not cached`,
				`routes[3].cache (line 8): a daojia-md5 route takes 58到家's callbacks, whose answers are not cached`,
			},
		},
		{
			name: "stale windows longer than a day, or negative",
			yaml: cacheRoutesYAML + `  - name: services
    match: "GET /api/services"
    upstream: backend
    cache:
      ttl: 60s
      stale_while_revalidate: 25h
      stale_if_error: -1s
`,
			want: []string{
				`routes[0].cache.stale_while_revalidate (line 10): must be at most 24h0m0s (a day), got 25h0m0s`,
				`routes[0].cache.stale_if_error (line 11): may not be negative, got -1s`,
			},
		},
		{
			name: "no ttl, an unknown scope, a bad vary header",
			yaml: cacheRoutesYAML + `  - {name: services, match: "GET /api/services", upstream: backend, cache: {scope: everyone, vary: ["Accept Language"]}}
`,
			want: []string{
				`routes[0].cache.ttl (line 5): required: how long an answer stays fresh, such as "60s"`,
				`routes[0].cache.scope (line 5): want one of client, all; got "everyone"`,
				`routes[0].cache.vary[0] (line 5): want a request header name such as Accept-Language, got "Accept Language"`,
			},
		},
		{
			name: "an unknown key in a route's cache",
			yaml: cacheRoutesYAML + `  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s, tll: 5s}}
`,
			want: []string{`routes[0].cache.tll (line 5): unknown key "tll"`},
		},
		{
			name: "nowhere to keep entries",
			yaml: "cache: {memory_bytes: 0}\n" + cacheRoutesYAML + `  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s}}
`,
			want: []string{`cache.memory_bytes (line 1): is 0 and redis.addrs is empty: routes[0].cache has nowhere to keep its answers`},
		},
		{
			name: "an in-process tier too small for the largest entry",
			yaml: "cache:\n  memory_bytes: 1000000\n  max_entry_bytes: 100000\n  lock_timeout: 0s\n",
			want: []string{
				`cache.memory_bytes (line 2): must be 0 (no in-process tier) or at least 16 × max_entry_bytes (1600000): the tier is kept in 16 parts, each of which must hold the largest entry`,
				`cache.lock_timeout (line 4): must be more than 0, got 0s`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, problemsOf(t, tt.yaml), tt.want)
		})
	}
}

func TestCacheWithRedisNeedsNoMemory(t *testing.T) {
	cfg := mustParse(t, "redis: {addrs: [\"127.0.0.1:6379\"]}\ncache: {memory_bytes: 0}\n"+cacheRoutesYAML+
		`  - {name: services, match: "GET /api/services", upstream: backend, cache: {ttl: 60s, scope: all, stale_if_error: 24h}}
`)
	if !cfg.Routes[0].Cache.Enabled || cfg.Routes[0].Cache.Scope != "all" {
		t.Fatalf("%+v", cfg.Routes[0].Cache)
	}
}
