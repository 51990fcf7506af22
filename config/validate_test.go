package config

import (
	"testing"
)

// Each case is a small file with one kind of mistake and the exact lines
// `signgate validate` prints for it. KEY_A and KEY_B expand to valid key hashes.
func TestValidationProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		// server
		{
			name: "listen without a port",
			yaml: "server:\n  listen: \"8443\"\n",
			want: []string{`server.listen (line 2): want host:port such as ":8443" or "127.0.0.1:9090", got "8443"`},
		},
		{
			name: "listen may not be empty",
			yaml: "server:\n  listen: \"\"\n",
			want: []string{`server.listen (line 2): required, such as ":8443"`},
		},
		{
			name: "admin_listen may not be empty",
			yaml: "server:\n  admin_listen: \"\"\n",
			want: []string{`server.admin_listen (line 2): required, such as ":8443"`},
		},
		{
			name: "http_listen port out of range",
			yaml: "server:\n  http_listen: \":99999\"\n",
			want: []string{`server.http_listen (line 2): want host:port such as ":8443" or "127.0.0.1:9090", got ":99999"`},
		},
		{
			name: "admin on the gateway's own address",
			yaml: "server:\n  listen: \":9000\"\n  admin_listen: \":9000\"\n",
			want: []string{`server.admin_listen (line 3): is the same address as server.listen`},
		},
		{
			name: "proxy_protocol_from takes networks and addresses",
			yaml: "server:\n  proxy_protocol_from: [\"10.0.0.0/8\", \"192.168.1.7\", \"2001:db8::/32\", \"10.0.0.0/33\", \"lb.internal\"]\n",
			want: []string{
				`server.proxy_protocol_from[3] (line 2): want a network such as "10.0.0.0/8" or an address, got "10.0.0.0/33"`,
				`server.proxy_protocol_from[4] (line 2): want a network such as "10.0.0.0/8" or an address, got "lb.internal"`,
			},
		},
		{
			name: "port 0 twice is two free ports, not a clash",
			yaml: "server:\n  listen: \"127.0.0.1:0\"\n  http_listen: \"127.0.0.1:0\"\n  admin_listen: \"127.0.0.1:0\"\n",
			want: nil,
		},
		{
			name: "sizes and timeouts out of range",
			yaml: "server:\n  max_body_bytes: 0\n  shutdown_timeout: 0s\n  read_timeout: -1s\n  max_header_bytes: -5\n",
			want: []string{
				`server.max_body_bytes (line 2): must be more than 0, got 0`,
				`server.shutdown_timeout (line 3): must be more than 0, got 0s`,
				`server.read_timeout (line 4): may not be negative, got -1s`,
				`server.max_header_bytes (line 5): must be more than 0, got -5`,
			},
		},

		// tls
		{
			name: "unknown tls mode",
			yaml: "tls:\n  mode: selfsigned\n",
			want: []string{`tls.mode (line 2): want one of self_signed, files, acme, off; got "selfsigned"`},
		},
		{
			name: "TLS 1.1",
			yaml: "tls:\n  min_version: \"1.1\"\n",
			want: []string{`tls.min_version (line 2): want one of 1.2, 1.3; got "1.1"`},
		},
		{
			name: "files mode without the files",
			yaml: "tls:\n  mode: files\n",
			want: []string{
				`tls.cert_file (line 1): required when tls.mode is files`,
				`tls.key_file (line 1): required when tls.mode is files`,
			},
		},
		{
			name: "acme without domains or email",
			yaml: "tls:\n  mode: acme\n  domains: []\n",
			want: []string{
				`tls.email (line 1): required when tls.mode is acme (the CA's expiry and revocation notices go there)`,
				`tls.domains (line 3): at least one domain is required when tls.mode is acme`,
			},
		},
		{
			name: "acme domain written as a URL",
			yaml: "tls:\n  mode: acme\n  domains: [\"https://api.example.com\"]\n  email: ops@example.com\n",
			want: []string{`tls.domains[0] (line 3): want a host name such as api.example.com, got "https://api.example.com"`},
		},

		// redis and auth
		{
			name: "redis address without a port and a negative db",
			yaml: "redis:\n  addrs: [\"10.0.0.5:6379\", redis.local]\n  db: -1\n",
			want: []string{
				`redis.addrs[1] (line 2): want host:port such as ":8443" or "127.0.0.1:9090", got "redis.local"`,
				`redis.db (line 3): may not be negative, got -1`,
			},
		},
		{
			name: "nonce forgotten before its timestamp expires",
			yaml: "auth:\n  timestamp_skew: 5m\n  nonce_ttl: 5m\n",
			want: []string{`auth.nonce_ttl (line 3): must be at least 2 × auth.timestamp_skew (10m0s): a nonce forgotten sooner can be replayed while its timestamp is still accepted`},
		},

		// clients
		{
			name: "client with nothing but a signature",
			yaml: "clients:\n  - signature: none\n",
			want: []string{
				`clients[0].id (line 2): required`,
				`clients[0].api_key_sha256 (line 2): required (signgate hash-key prints it)`,
				`clients[0].roles (line 2): at least one role is required`,
			},
		},
		{
			name: "duplicate client id and key",
			yaml: "roles:\n  r: {}\nclients:\n  - {id: a, api_key_sha256: \"${KEY_A}\", roles: [r]}\n  - {id: a, api_key_sha256: \"${KEY_A}\", roles: [r]}\n",
			want: []string{
				`clients[1].id (line 5): id "a" is already used by clients[0]`,
				`clients[1].api_key_sha256 (line 5): same key as clients[0]`,
			},
		},
		{
			name: "raw API key pasted as its hash is not echoed",
			yaml: "roles:\n  r: {}\nclients:\n  - id: a\n    api_key_sha256: demo-miniapp-key\n    roles: [r]\n",
			want: []string{`clients[0].api_key_sha256 (line 5): want 64 lower-case hex digits, the SHA-256 of the key as signgate hash-key prints it (got 16 characters)`},
		},
		{
			name: "unknown signature scheme",
			yaml: "roles:\n  r: {}\nclients:\n  - id: a\n    api_key_sha256: ${KEY_A}\n    signature: hmac\n    roles: [r]\n",
			want: []string{`clients[0].signature (line 6): want one of none, hmac-sha256, daojia-md5; got "hmac"`},
		},
		{
			name: "signature without a secret",
			yaml: "roles:\n  r: {}\nclients:\n  - id: a\n    api_key_sha256: ${KEY_A}\n    signature: hmac-sha256\n    roles: [r]\n",
			want: []string{`clients[0].secret (line 4): required when signature is hmac-sha256`},
		},
		{
			name: "secret that no signature checks",
			yaml: "roles:\n  r: {}\nclients:\n  - id: a\n    api_key_sha256: ${KEY_A}\n    secret: s3cret\n    roles: [r]\n",
			want: []string{`clients[0].secret (line 6): is set but signature is none, so it is never checked (set signature: hmac-sha256 or daojia-md5)`},
		},
		{
			name: "misspelt role",
			yaml: "roles:\n  resident_app: {}\nclients:\n  - id: property-miniapp\n    api_key_sha256: ${KEY_A}\n    roles: [resident_app, residnt_app]\n",
			want: []string{`clients[0].roles[1] (line 6): unknown role "residnt_app"`},
		},

		// roles
		{
			name: "bad allow pattern, mask and unmask together",
			yaml: "roles:\n  provider:\n    allow: [\"PUT /api/orders/*/status\", \"post /api/orders\"]\n    mask: true\n    unmask: true\n",
			want: []string{
				`roles.provider (line 2): mask and unmask cannot both be true`,
				`roles.provider.allow[1] (line 3): method "post" must be upper-case letters or *`,
			},
		},

		// rate limits
		{
			name: "rate limit with every field wrong",
			yaml: "rate_limits:\n  - {key: owner, rate: 20, burst: -1, routes: [nope]}\n",
			want: []string{
				`rate_limits[0].key (line 2): want ip, client, route or user, or several joined by "+" (user+route), got "owner"`,
				`rate_limits[0].rate (line 2): want N/s, N/m or N/h such as "20/s", got "20"`,
				`rate_limits[0].burst (line 2): may not be negative, got -1`,
				`rate_limits[0].routes[0] (line 2): unknown route "nope"`,
			},
		},
		{
			name: "zero rate",
			yaml: "rate_limits:\n  - {key: ip, rate: 0/s}\n",
			want: []string{`rate_limits[0].rate (line 2): must be more than 0, got "0/s"`},
		},
		{
			name: "rate left out",
			yaml: "rate_limits:\n  - key: ip\n",
			want: []string{`rate_limits[0].rate (line 2): required, such as "20/s"`},
		},

		// upstreams
		{
			name: "bad upstream targets and health path",
			yaml: "upstreams:\n  backend:\n    targets: [\"127.0.0.1:9000\", \"http://b:9000/x?y=1\", \"ftp://c\"]\n    health: {path: healthz}\n    retries: -1\n  empty: {}\n",
			want: []string{
				`upstreams.backend.targets[0] (line 3): want an absolute http:// or https:// URL, got "127.0.0.1:9000"`,
				`upstreams.backend.targets[1] (line 3): may not have a query or fragment, got "http://b:9000/x?y=1"`,
				`upstreams.backend.targets[2] (line 3): want an absolute http:// or https:// URL, got "ftp://c"`,
				`upstreams.backend.health.path (line 4): want a path starting with /, got "healthz"`,
				`upstreams.backend.retries (line 5): may not be negative, got -1`,
				`upstreams.empty.targets (line 6): at least one target is required`,
			},
		},

		// routes
		{
			name: "route problems",
			yaml: `upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
  - {name: api, match: "GET /x", upstream: bakend}
  - {match: "GET api", upstream: backend}
  - {name: c, match: "GET /c"}
  - {name: d, match: "GET /d", daojia: proxy}
  - {name: e, match: "GET /e", upstream: backend, verify: md5}
  - {name: f, upstream: backend, daojia: relay}
`,
			want: []string{
				`routes[1].name (line 5): name "api" is already used by routes[0]`,
				`routes[1].upstream (line 5): unknown upstream "bakend"`,
				`routes[2].name (line 6): required (it labels metrics and logs)`,
				`routes[2].match (line 6): path "api" must start with /`,
				`routes[3] (line 7): needs upstream: NAME or daojia: relay`,
				`routes[4].daojia (line 8): want "relay", got "proxy"`,
				`routes[5].verify (line 9): want hmac-sha256 or daojia-md5 (or leave it out for the client's own scheme), got "md5"`,
				`routes[6].match (line 10): required, such as "GET /api/orders/*"`,
				`routes[6] (line 10): set either upstream or daojia: relay, not both`,
				`daojia.base_url: required by route "f" (daojia: relay)`,
				`daojia.service_key: required by route "f" (daojia: relay)`,
				`daojia.service_secret: required by route "f" (daojia: relay)`,
			},
		},
		{
			name: "relay routes whose path is not a fixed prefix",
			yaml: `daojia: {base_url: "http://127.0.0.1:9700", service_key: "k", service_secret: "s"}
routes:
  - {name: deep, match: "POST /partners/daojia/**", daojia: relay}
  - {name: root, match: "POST /**", daojia: relay}
  - {name: exact, match: "POST /daojia/serviceUser/saveServiceUser", daojia: relay}
  - {name: wild, match: "POST /partners/*/daojia/**", daojia: relay}
`,
			want: []string{
				`routes[2].match (line 5): a daojia: relay route's path must be a fixed prefix ending in /**, such as "POST /daojia/**": what follows the prefix is the 58到家 path (roles' allow lists can narrow it), got "POST /daojia/serviceUser/saveServiceUser"`,
				`routes[3].match (line 6): a daojia: relay route's path must be a fixed prefix ending in /**, such as "POST /daojia/**": what follows the prefix is the 58到家 path (roles' allow lists can narrow it), got "POST /partners/*/daojia/**"`,
			},
		},
		{
			name: "websocket routes that cannot tunnel",
			yaml: `upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
daojia: {base_url: "http://127.0.0.1:9700", service_key: "k", service_secret: "s"}
routes:
  - {name: live, match: "GET /api/live", upstream: backend, websocket: true}
  - {name: any, match: "* /api/any/**", upstream: backend, websocket: true}
  - {name: post, match: "POST /api/live", upstream: backend, websocket: true}
  - {name: relay, match: "GET /daojia/**", daojia: relay, websocket: true}
  - {name: cb, match: "GET /cb/**", upstream: backend, verify: daojia-md5, websocket: true}
  - {name: masked, match: "GET /api/m", upstream: backend, mask_request: true, websocket: true}
`,
			want: []string{
				`routes[2].websocket (line 7): a WebSocket handshake is a GET; this route's match "POST /api/live" takes no GET`,
				`routes[3].websocket (line 8): a daojia: relay route answers 58到家 calls itself; it has no upstream to open a WebSocket to`,
				`routes[4].websocket (line 9): a daojia-md5 route takes 58到家 callbacks, signed POST bodies; it cannot also take WebSocket upgrades`,
				`routes[5].websocket (line 10): WebSocket messages are not masked: a route with mask_request cannot take upgrades`,
			},
		},
		{
			name: "daojia-md5 callback route with an incomplete daojia account",
			yaml: `daojia:
  base_url: sandboxapi.daojia.com
  service_key: ""
upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
routes:
  - {name: daojia-callback, match: "POST /callbacks/daojia/**", verify: daojia-md5, upstream: backend}
`,
			want: []string{
				`daojia.service_secret (line 1): required by route "daojia-callback" (verify: daojia-md5)`,
				`daojia.base_url (line 2): want an absolute http:// or https:// URL, got "sandboxapi.daojia.com"`,
				`daojia.service_key (line 3): required by route "daojia-callback" (verify: daojia-md5)`,
			},
		},
		{
			name: "daojia token settings",
			yaml: "daojia:\n  version: \"\"\n  token:\n    path: token/get\n    default_ttl: 0s\n",
			want: []string{
				`daojia.version (line 2): required (it fills {version} in 58到家 URLs)`,
				`daojia.token.path (line 4): want a path starting with /, got "token/get"`,
				`daojia.token.default_ttl (line 5): must be more than 0, got 0s`,
			},
		},

		// masking, cors, log, ratelimit
		{
			name: "unknown detector and zero masking limit",
			yaml: "masking:\n  detect: [cn_mobile, cn_passport]\n  max_body_bytes: 0\n",
			want: []string{
				`masking.detect[1] (line 2): want one of cn_mobile, cn_id_card; got "cn_passport"`,
				`masking.max_body_bytes (line 3): must be more than 0, got 0`,
			},
		},
		{
			name: "CORS origins with a path or no scheme, credentials with *",
			yaml: "cors:\n  allow_origins: [\"*\", \"https://admin.example.com/\", admin.example.com]\n  allow_credentials: true\n  allow_methods: [get]\n",
			want: []string{
				`cors.allow_origins[1] (line 2): want "*" or scheme://host[:port] such as "https://admin.example.com", got "https://admin.example.com/"`,
				`cors.allow_origins[2] (line 2): want "*" or scheme://host[:port] such as "https://admin.example.com", got "admin.example.com"`,
				`cors.allow_credentials (line 3): cannot be true with allow_origins "*": browsers refuse credentials for a wildcard origin`,
				`cors.allow_methods[0] (line 4): want an upper-case method such as GET, got "get"`,
			},
		},
		{
			name: "log level and format",
			yaml: "log:\n  level: verbose\n  format: xml\n",
			want: []string{
				`log.level (line 2): want one of debug, info, warn, error; got "verbose"`,
				`log.format (line 3): want one of json, text; got "xml"`,
			},
		},
		{
			name: "access log buffer out of range, flush interval zero",
			yaml: "log:\n  access_buffer_bytes: 2097152\n  access_flush_interval: 0s\n",
			want: []string{
				`log.access_buffer_bytes (line 2): must be between 0 (no buffer) and 1048576, got 2097152`,
				`log.access_flush_interval (line 3): must be more than 0, got 0s`,
			},
		},
		{
			name: "negative access log buffer",
			yaml: "log:\n  access_buffer_bytes: -1\n",
			want: []string{`log.access_buffer_bytes (line 2): must be between 0 (no buffer) and 1048576, got -1`},
		},
		{
			name: "redis failure policy",
			yaml: "ratelimit:\n  redis_failure: retry\n",
			want: []string{`ratelimit.redis_failure (line 2): want one of local, open, closed; got "retry"`},
		},
		{
			name: "ipv6 prefix of zero",
			yaml: "ratelimit:\n  ipv6_prefix: 0\n",
			want: []string{`ratelimit.ipv6_prefix (line 2): want a prefix length from 1 to 128 (64: count each /64 once), got 0`},
		},
		{
			name: "ipv6 prefix longer than an address",
			yaml: "ratelimit:\n  ipv6_prefix: 129\n",
			want: []string{`ratelimit.ipv6_prefix (line 2): want a prefix length from 1 to 128 (64: count each /64 once), got 129`},
		},
		{
			name: "negative ipv6 prefix",
			yaml: "ratelimit:\n  ipv6_prefix: -64\n",
			want: []string{`ratelimit.ipv6_prefix (line 2): want a prefix length from 1 to 128 (64: count each /64 once), got -64`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			equalLines(t, problemsOf(t, tt.yaml), tt.want)
		})
	}
}

// One run must report everything, decode and validation problems together, in the
// order a reader meets them in the file.
func TestEveryProblemAtOnceInLineOrder(t *testing.T) {
	yaml := `server:
  lissen: ":8443"
  max_body_bytes: abc
tls:
  mode: acme
roles:
  resident_app: {allow: ["GET /api/services"]}
clients:
  - id: property-miniapp
    api_key_sha256: ${KEY_A}
    roles: [residnt_app]
  - id: sunshine-housekeeping
    api_key_sha256: ${KEY_B}
    signature: hmac-sha256
    secret: ${SUNSHINE_SECRET_MISSING}
    roles: [resident_app]
upstreams:
  backend: {targets: ["http://127.0.0.1:9000"]}
routes:
  - {name: api, match: "* /api/**", upstream: backend}
  - {name: orders, match: "POST /api/orders", upstream: bakend}
log:
  level: loud
`
	equalLines(t, problemsOf(t, yaml), []string{
		`server.lissen (line 2): unknown key "lissen"`,
		`server.max_body_bytes (line 3): want an integer, got "abc"`,
		`tls.domains (line 4): at least one domain is required when tls.mode is acme`,
		`tls.email (line 4): required when tls.mode is acme (the CA's expiry and revocation notices go there)`,
		`clients[0].roles[0] (line 11): unknown role "residnt_app"`,
		`clients[1].secret (line 15): environment variable SUNSHINE_SECRET_MISSING is not set`,
		`routes[1].upstream (line 21): unknown upstream "bakend"`,
		`log.level (line 23): want one of debug, info, warn, error; got "loud"`,
	})
}

func TestServerHosts(t *testing.T) {
	cfg := mustParse(t, "server: {hosts: [api.example.com, \"*.wx.example.com\"]}\n")
	if got := cfg.Server.Hosts; len(got) != 2 || got[1] != "*.wx.example.com" {
		t.Errorf("server.hosts = %q", got)
	}
	equalLines(t, problemsOf(t, "server:\n  hosts: [\"API.example.com\", \"api.example.com:443\", \"*\", \"a.*.example.com\", \"\"]\n"), []string{
		`server.hosts[0] (line 2): want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got "API.example.com"`,
		`server.hosts[1] (line 2): want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got "api.example.com:443"`,
		`server.hosts[2] (line 2): want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got "*"`,
		`server.hosts[3] (line 2): want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got "a.*.example.com"`,
		`server.hosts[4] (line 2): want a lower-case host name without a port, such as "api.example.com" or "*.example.com", got ""`,
	})
}
