// Package state is the shared-state seam: nonces, tokens and locks that every signgate
// instance must agree on.
//
// Behind an L4 load balancer, a nonce seen by one instance must be a replay on all of
// them, a 58到家 accessToken fetched by one is the token all of them use, and a lock taken
// by one keeps the others from fetching at the same time. With redis.addrs configured
// that state lives in Redis (Redis); with none, one instance keeps it in process memory
// (Memory), which is the embedded default and enough for a first run.
//
// Both types have the same methods and neither implements an interface declared here:
// consumers (auth's nonce store, daojia's token cache) each declare the few methods
// they call, as go-redis users such as redis_rate do, and tests run one contract suite
// against both, the Redis one on a real redis-server.
//
// Errors are never swallowed. A caller treats any error as "state unavailable" and
// fails closed where a decision depends on it: a replay check that cannot reach its
// store must refuse the request rather than let a replay through. For the same reason
// Memory refuses new keys when full instead of forgetting old ones.
//
// A ttl of zero or less means the key does not expire.
//
// Redis may be one server, a Sentinel group or a Cluster. The store follows a failover
// by itself; it says which node is master now and how many failovers it saw
// (Redis.Topology) and reports its errors by kind (RedisOptions.OnError), for /readyz
// and the metrics. Keys used together carry one hash tag (HashTag), so that no command
// the gateway sends spans two Cluster slots.
package state
