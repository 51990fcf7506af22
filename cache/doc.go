// Package cache is the gateway's response cache: a bounded in-process LRU tier in
// front of an optional Redis tier that every instance of a fleet shares.
//
// Entries are whole answers (status, headers, body) as one view of one request
// receives them; the server decides what a view is (masked or full) and puts it in
// the Key, so this package never sees a request or a role, only keys and answers.
//
// A miss is filled by one caller per key across the fleet: a Redis lock with an
// owner token and an expiry (SET NX PX) is taken in the same script that looks the
// key up, and callers that do not get it wait for the entry, bounded by
// LockTimeout, or are served a stale one. In one process, callers of one key share
// one flight, so at most one of them per instance talks to Redis while a fill is on.
//
// Purges reach every instance twice over: the Redis entries are deleted (an index
// per route finds them, and a generation per route keeps fills that began before
// the purge from storing old answers after it), and a pub/sub message empties
// every instance's in-process tier. Pub/sub rather than a generation counter alone,
// because an in-process hit would then have to read the counter from Redis, which
// is the round trip the tier is there to save, or poll it and serve purged answers
// until the next poll. Pub/sub delivers at most once, so an instance serves from
// its in-process tier only while its subscription is up, and on resubscribing
// compares a purge epoch kept in Redis, emptying its tier when it missed one. A
// purge waits for each subscribed instance to acknowledge, so when it answers, no
// instance serves what it removed.
//
// Redis failing or slow never fails a request: the cache answers Bypass and the
// caller goes to the upstream, for a second, before Redis is tried again.
//
// All Redis keys of one route share a Cluster hash tag, so every script runs on one
// slot; the purge epoch and acknowledgements are single keys.
package cache
