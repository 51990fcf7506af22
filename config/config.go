package config

import (
	"time"

	"github.com/signgate/signgate/route"
	"github.com/signgate/signgate/secret"
)

// Config is a whole signgate config.yaml, decoded, defaulted and validated.
type Config struct {
	Server     Server              `yaml:"server"`
	TLS        TLS                 `yaml:"tls"`
	Redis      Redis               `yaml:"redis"`
	Auth       Auth                `yaml:"auth"`
	Clients    []Client            `yaml:"clients"`
	Roles      map[string]Role     `yaml:"roles"`
	RateLimit  RateLimitPolicy     `yaml:"ratelimit"`
	RateLimits []RateLimit         `yaml:"rate_limits"`
	Upstreams  map[string]Upstream `yaml:"upstreams"`
	Daojia     Daojia              `yaml:"daojia"`
	Routes     []Route             `yaml:"routes"`
	Masking    Masking             `yaml:"masking"`
	Cache      Cache               `yaml:"cache"`
	CORS       CORS                `yaml:"cors"`
	Tracing    Tracing             `yaml:"tracing"`
	WeChat     WeChat              `yaml:"wechat"`
	JWT        JWT                 `yaml:"jwt"`
	OpenAPI    OpenAPI             `yaml:"openapi"`
	Log        Log                 `yaml:"log"`

	inlineSecrets []string
}

// InlineSecrets returns the paths of the secrets (client secrets, the serviceSecret,
// the Redis password) written in the file itself rather than as ${ENV} references,
// in file order: the file then needs the care of a key file.
func (c *Config) InlineSecrets() []string { return c.inlineSecrets }

// Server holds the listeners and the limits of the HTTP servers.
type Server struct {
	Listen            string        `yaml:"listen"`            // TLS unless tls.mode is off
	HTTPListen        string        `yaml:"http_listen"`       // ACME HTTP-01 and redirects; "" disables
	PublicHTTPSPort   int           `yaml:"public_https_port"` // port put in redirects when clients reach listen through another (443 behind -p 443:8443); 0: listen's
	AdminListen       string        `yaml:"admin_listen"`      // /metrics /healthz /readyz
	MaxBodyBytes      int64         `yaml:"max_body_bytes"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`  // 0: none, so bodies can stream
	WriteTimeout      time.Duration `yaml:"write_timeout"` // 0: none, so responses can stream
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	MaxHeaderBytes    int           `yaml:"max_header_bytes"`
	Pprof             bool          `yaml:"pprof"` // /debug/pprof/ on the admin listener
	// ProxyProtocolFrom lists the networks (CIDRs or addresses) of the L4 load
	// balancers that prefix each connection to listen and http_listen with a PROXY
	// protocol header; their connections must carry one, and its source address
	// stands for the caller's. Connections from elsewhere are taken as they are.
	ProxyProtocolFrom []string `yaml:"proxy_protocol_from"`
	// Hosts are the host names callers may ask for (Host, :authority), exactly or
	// as "*.example.com" (one label or more); another is refused 421 before
	// routing. Upstreams build links (a password-reset mail, a redirect) from the
	// X-Forwarded-Host the gateway passes on, so a caller must not choose it.
	// Empty: any host (the embedded default and local runs).
	Hosts []string `yaml:"hosts"`
}

// TLS chooses where the edge certificate comes from.
type TLS struct {
	Mode       string   `yaml:"mode"` // self_signed | files | acme | off
	MinVersion string   `yaml:"min_version"`
	Domains    []string `yaml:"domains"`
	Email      string   `yaml:"email"`
	CA         string   `yaml:"ca"`      // ACME directory URL
	CARoot     string   `yaml:"ca_root"` // PEM file of a private ACME CA to trust
	StorageDir string   `yaml:"storage_dir"`
	CertFile   string   `yaml:"cert_file"`
	KeyFile    string   `yaml:"key_file"`
}

// Redis is the shared state store; with no Addrs, state stays in process memory.
type Redis struct {
	Addrs      []string      `yaml:"addrs"`
	MasterName string        `yaml:"master_name"` // Sentinel master; Addrs are then sentinels
	Username   string        `yaml:"username"`
	Password   secret.Secret `yaml:"password"`
	DB         int           `yaml:"db"`
	TLS        bool          `yaml:"tls"`
	KeyPrefix  string        `yaml:"key_prefix"`
	Timeout    time.Duration `yaml:"timeout"`
}

// Auth holds the replay-protection windows of signed requests.
type Auth struct {
	TimestampSkew time.Duration `yaml:"timestamp_skew"`
	NonceTTL      time.Duration `yaml:"nonce_ttl"`
}

// Client is one caller, known by the SHA-256 of its API key.
type Client struct {
	ID           string        `yaml:"id"`
	APIKeySHA256 string        `yaml:"api_key_sha256"`
	Secret       secret.Secret `yaml:"secret"`
	Signature    string        `yaml:"signature"` // none | hmac-sha256 | daojia-md5
	Roles        []string      `yaml:"roles"`
}

// Role grants "METHOD /path" patterns and decides whether responses are masked.
type Role struct {
	Allow  []string `yaml:"allow"`
	Mask   bool     `yaml:"mask"`
	Unmask bool     `yaml:"unmask"`
	// UserExempt lets the role's clients through user: required routes without an
	// owner's session: servers that act for themselves, such as a provider's or the
	// ops console, on routes that owners' mini-programs call too.
	UserExempt bool `yaml:"user_exempt"`

	// AllowSet is Allow parsed at load time.
	AllowSet route.Set `yaml:"-"`
}

// RateLimitPolicy says what the limiters do when Redis cannot be reached, and how
// key: ip counts IPv6 callers.
type RateLimitPolicy struct {
	RedisFailure string `yaml:"redis_failure"` // local | open | closed
	// IPv6Prefix is how many leading bits of an IPv6 caller's address key: ip counts
	// by (64: one /64, what one host or one customer line is given). IPv4 callers
	// are always counted per address.
	IPv6Prefix int `yaml:"ipv6_prefix"`
}

// RateLimit is one limiter: Rate per Key, optionally only on some routes.
type RateLimit struct {
	Key    string   `yaml:"key"`    // ip | client | route | user, or several joined by "+"
	Routes []string `yaml:"routes"` // route names; empty: every route
	Rate   string   `yaml:"rate"`   // "N/s", "N/m" or "N/h"
	Burst  int      `yaml:"burst"`

	// Limit is Rate in events per second.
	Limit float64 `yaml:"-"`
	// Period is the unit Rate was written in, for RateLimit-* headers.
	Period time.Duration `yaml:"-"`
}

// Upstream is a pool of backend targets.
type Upstream struct {
	Targets         []string      `yaml:"targets"`
	DialTimeout     time.Duration `yaml:"dial_timeout"`
	ResponseTimeout time.Duration `yaml:"response_timeout"`
	ReadTimeout     time.Duration `yaml:"read_timeout"` // longest pause between two reads of a response body
	Retries         int           `yaml:"retries"`      // 0: no retries
	Health          HealthCheck   `yaml:"health"`
	Passive         PassiveHealth `yaml:"passive"`
}

// HealthCheck is the active health check of an upstream; an empty Path disables it.
type HealthCheck struct {
	Path     string        `yaml:"path"`
	Interval time.Duration `yaml:"interval"`
	Timeout  time.Duration `yaml:"timeout"`
}

// PassiveHealth ejects a target after MaxFails failed requests in a row.
type PassiveHealth struct {
	MaxFails int           `yaml:"max_fails"` // 0: never eject
	EjectFor time.Duration `yaml:"eject_for"`
}

// Daojia is the 58到家 open-platform account that relay routes call out with and
// daojia-md5 callbacks are verified against.
type Daojia struct {
	BaseURL       string        `yaml:"base_url"`
	Version       string        `yaml:"version"`
	ServiceKey    string        `yaml:"service_key"`
	ServiceSecret secret.Secret `yaml:"service_secret"`
	Timeout       time.Duration `yaml:"timeout"`
	Token         DaojiaToken   `yaml:"token"`
}

// DaojiaToken configures the 58到家 accessToken endpoint and cache.
type DaojiaToken struct {
	Path          string        `yaml:"path"` // "{version}" is replaced by Daojia.Version
	RefreshBefore time.Duration `yaml:"refresh_before"`
	DefaultTTL    time.Duration `yaml:"default_ttl"` // when the answer has no expiresIn
	InvalidCodes  []string      `yaml:"invalid_codes"`
}

// Route sends requests matching Match to an upstream or to the 58到家 relay.
type Route struct {
	Name        string `yaml:"name"` // metric and log label
	Match       string `yaml:"match"`
	Upstream    string `yaml:"upstream"`
	Daojia      string `yaml:"daojia"` // "relay"
	Verify      string `yaml:"verify"` // "" (the client's scheme) | hmac-sha256 | daojia-md5
	MaskRequest bool   `yaml:"mask_request"`
	// Public routes take no API key: health pages, static terms, open service lists.
	// Rate limits by ip still apply.
	Public bool `yaml:"public"`
	// WebSocket lets GET requests on this route upgrade to a WebSocket tunnel to the
	// upstream after every check a request here passes. Other routes refuse upgrades.
	WebSocket bool `yaml:"websocket"`
	// Cache serves the route's GET answers from the response cache (see RouteCache).
	Cache RouteCache `yaml:"cache"`
	// WeChat makes the route the gateway's own WeChat login or logout endpoint
	// ("login" | "logout"); such a route has no upstream.
	WeChat string `yaml:"wechat"`
	// User says whether the route needs an owner's session or JWT: "required"
	// refuses callers without one (401); "" (the default) passes the owner on when
	// there is one.
	User string `yaml:"user"`
	// Validate checks requests and answers against the OpenAPI specs (see OpenAPI).
	Validate RouteValidate `yaml:"validate"`

	// Pattern is Match parsed at load time.
	Pattern route.Pattern `yaml:"-"`
}

// Masking configures PII masking of response bodies.
type Masking struct {
	Fields       []string `yaml:"fields"`
	Detect       []string `yaml:"detect"` // cn_mobile | cn_id_card
	Names        []string `yaml:"names"`
	MaxBodyBytes int64    `yaml:"max_body_bytes"`
}

// CORS answers browser preflights; with no AllowOrigins, CORS is off.
type CORS struct {
	AllowOrigins     []string      `yaml:"allow_origins"`
	AllowMethods     []string      `yaml:"allow_methods"`
	AllowHeaders     []string      `yaml:"allow_headers"`
	ExposeHeaders    []string      `yaml:"expose_headers"`
	AllowCredentials bool          `yaml:"allow_credentials"`
	MaxAge           time.Duration `yaml:"max_age"`
}

// Log configures the process log and the unmask audit log.
type Log struct {
	Level     string `yaml:"level"`      // debug | info | warn | error
	Format    string `yaml:"format"`     // json | text
	AuditFile string `yaml:"audit_file"` // "": the main log
	// AccessBufferBytes, when above 0, gathers access lines in a buffer of that
	// size, written out when full, every AccessFlushInterval, and before any other
	// log line (nginx's access_log buffer= flush=): one write(2) per batch rather
	// than per request. 0: each line is written at once.
	AccessBufferBytes   int           `yaml:"access_buffer_bytes"`
	AccessFlushInterval time.Duration `yaml:"access_flush_interval"` // how long a buffered line may wait
}
