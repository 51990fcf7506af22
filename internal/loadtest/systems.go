package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/signgate/signgate/auth"
)

// system is what a row puts between wrk and the upstream.
type system string

const (
	sysDirect   system = "direct"
	sysBare     system = "bare"
	sysPool     system = "pool"
	sysNginx    system = "nginx"
	sysCaddy    system = "caddy"
	sysSigngate system = "signgate"
)

// sut is a running system under test.
type sut struct {
	addr    string // host:port wrk calls
	proc    *proc  // the measured process (with its children)
	metrics string // URL of a /metrics with go_memstats_mallocs_total; "" when there is none
	admin   string // host:port serving /debug/pprof/profile (signgate, bare); "" when none
	stop    func()
}

// The credentials of the signgate rows' clients.
const (
	appKey         = "loadtest-app-key"
	signerKey      = "loadtest-signer-key"
	signerSecret   = "loadtest-signer-secret"
	providerKey    = "loadtest-provider-key"
	providerSecret = "loadtest-provider-secret"
	// The sandbox's demo partner (signgate sandbox without -config).
	daojiaServiceKey    = "2801209652"
	daojiaServiceSecret = "testSecret123"
)

// start runs r's system under test on the proxy core (the direct rows: the upstream
// on core 0, which is what they measure).
func (l *lab) start(r row) (*sut, error) {
	switch r.system {
	case sysDirect:
		return l.startDirect(r)
	case sysBare:
		return l.startBare(r, "stdlib")
	case sysPool:
		return l.startBare(r, "pool")
	case sysNginx:
		return l.startNginx(r)
	case sysCaddy:
		return l.startCaddy(r)
	case sysSigngate:
		return l.startSigngate(r)
	}
	return nil, fmt.Errorf("row %s: unknown system %q", r.id, r.system)
}

func (l *lab) startDirect(r row) (*sut, error) {
	if !r.tls {
		return &sut{addr: l.upstream, proc: l.upstreamProc, metrics: "http://" + l.upstreamAdmin + "/metrics", stop: func() {}}, nil
	}
	addr, admin, err := twoAddrs()
	if err != nil {
		return nil, err
	}
	p, err := startPinned(l.dir, "upstream-tls", loadCore, []string{"GOMAXPROCS=1"},
		l.self, "upstream", "-listen", addr, "-admin", admin, "-cert", l.cert, "-key", l.key)
	if err != nil {
		return nil, err
	}
	return started(p, addr, &sut{addr: addr, proc: p, metrics: "http://" + admin + "/metrics"})
}

func (l *lab) startBare(r row, kind string) (*sut, error) {
	if r.tls {
		return nil, fmt.Errorf("row %s: the bare proxy has no TLS variant", r.id)
	}
	addr, admin, err := twoAddrs()
	if err != nil {
		return nil, err
	}
	p, err := startPinned(l.dir, "bare", r.proxyCore(), []string{"GOMAXPROCS=1"},
		l.self, "bare", "-kind", kind, "-listen", addr, "-admin", admin, "-upstream", "http://"+l.upstream)
	if err != nil {
		return nil, err
	}
	return started(p, addr, &sut{addr: addr, proc: p, metrics: "http://" + admin + "/metrics", admin: admin})
}

// startNginx runs nginx the way its documentation recommends for a keep-alive
// reverse proxy: one worker (one core), an upstream block with a keep-alive pool,
// HTTP/1.1 to the upstream with the Connection header cleared. access_log is off,
// as Caddy's is; error_log goes to the work directory.
func (l *lab) startNginx(r row) (*sut, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.dir, "nginx-"+r.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	listen, tlsConf := addr, ""
	if r.tls {
		listen = addr + " ssl"
		tlsConf = fmt.Sprintf("    ssl_certificate %s;\n    ssl_certificate_key %s;\n    ssl_protocols TLSv1.2 TLSv1.3;\n", l.cert, l.key)
	}
	// worker_connections counts client and upstream connections alike, so the idle
	// rows need more than the 4096 the others have. The others keep 4096: nginx
	// allocates its connection table up front, and their RSS would grow with it.
	workerConns := 4096
	if r.idle {
		workerConns = max(workerConns, l.idleConns+1024)
	}
	// The cached row: proxy_cache with its files on tmpfs, so a hit reads memory, not
	// a disk (the keys are in the keys_zone, shared memory, anyway), and every 200
	// fresh for 60s as signgate's cached rows have it. X-Cache-Status lets
	// checkCacheHit see the hits.
	cachePath, cacheConf, cleanup := "", "", func() {}
	if r.cached {
		shm, err := os.MkdirTemp("/dev/shm", "signgate-loadtest-")
		if err != nil {
			return nil, fmt.Errorf("row %s keeps nginx's cache on tmpfs, in /dev/shm: %w", r.id, err)
		}
		cleanup = func() { os.RemoveAll(shm) }
		// nginx creates the cache directory itself, owned by its workers' user, who
		// must be able to reach it.
		if err := os.Chmod(shm, 0o755); err != nil {
			cleanup()
			return nil, err
		}
		cachePath = fmt.Sprintf("  proxy_cache_path %s levels=1:2 keys_zone=loadtest:1m max_size=64m inactive=10m use_temp_path=off;\n",
			filepath.Join(shm, "cache"))
		cacheConf = "      proxy_cache loadtest;\n      proxy_cache_valid 200 60s;\n      add_header X-Cache-Status $upstream_cache_status;\n"
	}
	conf := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections %[5]d; }
http {
  access_log off;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
%[6]s  upstream backend {
    server %[2]s;
    keepalive 64;
  }
  server {
    listen %[3]s;
%[4]s    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
%[7]s    }
  }
}
`, dir, l.upstream, listen, tlsConf, workerConns, cachePath, cacheConf)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		cleanup()
		return nil, err
	}
	p, err := startPinned(l.dir, "nginx-"+r.id, r.proxyCore(), nil,
		"nginx", "-p", dir+"/", "-e", filepath.Join(dir, "error.log"), "-c", confPath, "-g", "daemon off;")
	if err != nil {
		cleanup()
		return nil, err
	}
	s, err := started(p, addr, &sut{addr: addr, proc: p})
	if err != nil {
		cleanup()
		return nil, err
	}
	stop := s.stop
	s.stop = func() { stop(); cleanup() }
	return s, nil
}

// startCaddy runs Caddy's reverse_proxy with the admin endpoint and access logs off
// and, as nginx's keepalive 64, up to 64 idle connections to the upstream (Caddy's
// default keeps 32, fewer than wrk's 64 connections).
func (l *lab) startCaddy(r row) (*sut, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(l.dir, "caddy-"+r.id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	site, autoHTTPS, tlsConf := "http://:"+port, "off", ""
	if r.tls {
		site, autoHTTPS = "https://:"+port, "disable_redirects"
		tlsConf = fmt.Sprintf("\ttls %s %s\n", l.cert, l.key)
	}
	conf := fmt.Sprintf(`{
	admin off
	auto_https %[1]s
	log {
		level ERROR
	}
	servers {
		protocols h1 h2
	}
}
%[2]s {
	bind 127.0.0.1
%[3]s	reverse_proxy %[4]s {
		transport http {
			keepalive_idle_conns_per_host 64
		}
	}
}
`, autoHTTPS, site, tlsConf, l.upstream)
	confPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	env := []string{"GOMAXPROCS=1", "HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config")}
	p, err := startPinned(l.dir, "caddy-"+r.id, r.proxyCore(), env,
		"caddy", "run", "--config", confPath, "--adapter", "caddyfile")
	if err != nil {
		return nil, err
	}
	return started(p, addr, &sut{addr: addr, proc: p})
}

// startSigngate runs the real binary, `signgate serve`, on a generated config. Its
// access log (one JSON line a request, one write(2) each) goes to stdout, /dev/null:
// signgate cannot turn it off, so it is part of what is measured.
func (l *lab) startSigngate(r row) (*sut, error) {
	addr, admin, err := twoAddrs()
	if err != nil {
		return nil, err
	}
	tlsConf := `{mode: "off"}`
	if r.tls {
		tlsConf = fmt.Sprintf(`{mode: files, cert_file: %q, key_file: %q}`, l.cert, l.key)
	}
	redis := ""
	if r.setup.redis {
		redis = fmt.Sprintf("redis: {addrs: [%q]}\n", l.redis)
	}
	if r.setup.cluster {
		redis = fmt.Sprintf("redis: {addrs: [\"%s\"]}\n", strings.Join(l.cluster, `", "`))
	}
	// sections are the top-level config sections a row adds; routes the routes it
	// adds after the fixed ones.
	sections, routes := "", ""
	// The cached rows: the services route (row 6's) behind the response cache, its
	// in-process tier on (Redis off), or off with Redis as the only tier.
	servicesCache := ""
	if r.cached {
		memory := 64 << 20
		if r.setup.cacheRedisOnly {
			if !r.setup.redis {
				return nil, fmt.Errorf("row %s: a Redis-only cache needs setup.redis", r.id)
			}
			memory = 0
		}
		sections += fmt.Sprintf("cache: {memory_bytes: %d}\n", memory)
		servicesCache = ", cache: {ttl: 60s, scope: all}"
	}
	if r.setup.tracing {
		sections += fmt.Sprintf("tracing: {otlp_endpoint: \"http://%s\", sample_ratio: 1}\n", l.upstream)
	}
	wechatRoles := ""
	if r.setup.wechat {
		// The sandbox, without -config, answers for its demo mini-program.
		sections += fmt.Sprintf("wechat: {appid: wx0123456789abcdef, secret: sandbox-secret, api_base: %q}\n", l.sandbox)
		wechatRoles = `, "GET /api/mine", "POST /auth/wechat/login"`
		routes += `  - {name: wx-login, match: "POST /auth/wechat/login", wechat: login}` + "\n" +
			`  - {name: mine, match: "GET /api/mine", upstream: backend, user: required}` + "\n"
	}
	bookValidate := ""
	if r.setup.validate {
		sections += fmt.Sprintf("openapi: {specs: [%q]}\n", l.spec)
		bookValidate = ", validate: {request: enforce}"
	}
	daojia := ""
	if r.setup.relay {
		daojia = fmt.Sprintf("daojia: {base_url: %q, service_key: %q, service_secret: %q}\n", l.sandbox, daojiaServiceKey, daojiaServiceSecret)
		routes += `  - {name: relay, match: "POST /daojia/**", daojia: relay}` + "\n"
	}
	conf := fmt.Sprintf(`server:
  listen: %[1]q
  http_listen: ""
  admin_listen: %[2]q
  pprof: true
  shutdown_timeout: 2s
# Access lines gathered and written 64 KB at a time (nginx's access_log buffer=),
# not one write(2) per request; nginx and Caddy above log nothing.
log: {access_buffer_bytes: 65536}
tls: %[3]s
%[4]s%[5]s%[13]sclients:
  - {id: app, api_key_sha256: %[6]q, roles: [app]}
  - {id: signer, api_key_sha256: %[7]q, secret: %[8]q, signature: hmac-sha256, roles: [app]}
  - {id: provider, api_key_sha256: %[9]q, secret: %[10]q, signature: hmac-sha256, roles: [provider]}
roles:
  app: {allow: ["GET /api/services", "GET /api/limited", "POST /api/orders", "POST /daojia/**"%[15]s]}
  provider: {allow: ["GET /api/orders"], mask: true}
masking: {fields: [phone, mobile, userPhone, contactPhone], detect: [cn_mobile]}
upstreams: {backend: {targets: ["http://%[11]s"]}}
routes:
  - {name: public, match: "GET /api/public", upstream: backend, public: true}
  - {name: services, match: "GET /api/services", upstream: backend%[14]s}
  - {name: limited, match: "GET /api/limited", upstream: backend}
  - {name: orders, match: "GET /api/orders", upstream: backend}
  - {name: book, match: "POST /api/orders", upstream: backend%[16]s}
%[12]s# Limits high enough never to refuse: the rows measure the cost of deciding. With
# redis.addrs set, signgate keeps them in Redis (GCRA), as a fleet would.
rate_limits:
  - {key: ip, routes: [limited, orders], rate: 1000000/s, burst: 1000000}
  - {key: client, routes: [limited, orders], rate: 1000000/s, burst: 1000000}
`, addr, admin, tlsConf, redis, daojia,
		auth.HashKey(appKey), auth.HashKey(signerKey), signerSecret, auth.HashKey(providerKey), providerSecret,
		l.upstream, routes, sections, servicesCache, wechatRoles, bookValidate)
	confPath := filepath.Join(l.dir, "signgate-"+r.id+".yaml")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		return nil, err
	}
	p, err := startPinned(l.dir, "signgate-"+r.id, r.proxyCore(), []string{"GOMAXPROCS=1"},
		l.signgate, "serve", "-config", confPath)
	if err != nil {
		return nil, err
	}
	return started(p, addr, &sut{addr: addr, proc: p, metrics: "http://" + admin + "/metrics", admin: admin})
}

// started waits for p to listen on addr and completes s; on failure p is stopped.
func started(p *proc, addr string, s *sut) (*sut, error) {
	if err := p.waitListening(addr); err != nil {
		p.stop()
		return nil, err
	}
	s.stop = p.stop
	return s, nil
}

func twoAddrs() (string, string, error) {
	a, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	b, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	if a == b {
		return twoAddrs()
	}
	return a, b, nil
}
