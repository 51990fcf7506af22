// Package ratelimit decides whether a request may pass a rate-limit rule, per key
// (client, IP, route or a combination), either in this process or shared by every
// signgate instance through Redis.
//
// Local keeps one golang.org/x/time/rate token bucket per rule and key, in memory that
// stays within MaxKeys however many distinct keys arrive: a bucket that has refilled to
// its burst behaves exactly like one never created, so it is the first to go. Redis runs
// GCRA in a Lua script on Redis's own clock, so any number of instances admit exactly
// what one would. NewFallback puts a local limiter (or a fixed answer) behind the Redis
// one for while Redis is unreachable.
//
// A Limiter answers one rule at a time; a Decider (every limiter here is one) answers
// all the Steps of a request at once: its rules and its replay check (a once step: a
// key recorded if absent), stage by stage, a stage decided only when the ones before it
// passed. The Redis limiter makes them one script run, one round trip; on a Cluster one
// per hash slot, sent together. Where several rules apply the caller keeps the Stricter
// answer. The key is resolved by the caller (an IP, a client id, "{client-a}|orders"),
// which keeps building it out of the hot path here; the rule's Name is part of the
// bucket's identity, so a config reload that keeps a rule's Name keeps its buckets.
package ratelimit
