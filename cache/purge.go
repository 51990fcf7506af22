package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// ackWait bounds how long a purge waits for the other instances to acknowledge.
const ackWait = 2 * time.Second

// PurgeResult is what a purge did.
type PurgeResult struct {
	// Entries is how many entries were removed: from Redis with Redis (the fleet's
	// copy; the in-process copies of them are not counted again), from this
	// process otherwise.
	Entries int
	// Instances is how many instances emptied their in-process tier: those that
	// acknowledged within two seconds, with Redis; this one, without.
	Instances int
}

// Purge removes the entries of routes whose (decided) path starts with prefix ("":
// every path): from Redis, and from the in-process tier of every instance that
// follows purges (see Start). It returns once every instance the purge message
// reached has acknowledged, or after two seconds.
func (c *Cache) Purge(ctx context.Context, routes []string, prefix string) (PurgeResult, error) {
	if len(routes) == 0 {
		return PurgeResult{}, nil
	}
	if c.rt == nil {
		return PurgeResult{Entries: c.purgeLocal(routes, prefix), Instances: 1}, nil
	}
	var res PurgeResult
	for _, r := range routes {
		n, err := c.rt.purgeRoute(ctx, r, prefix)
		res.Entries += n
		if err != nil {
			c.purgeLocal(routes, prefix)
			return res, err
		}
	}
	// The epoch moves before the message goes out: an instance whose subscription
	// is down now finds the epoch moved when it is back, and empties its tier.
	epoch, err := c.rt.client.Incr(ctx, c.rt.epochKey()).Result()
	if err != nil {
		c.purgeLocal(routes, prefix)
		return res, fmt.Errorf("cache: redis purge: %w", err)
	}
	msg := purgeMessage{ID: newToken(), Epoch: epoch, Routes: routes, Prefix: prefix}
	payload, _ := json.Marshal(msg)
	receivers, err := c.rt.client.Publish(ctx, c.rt.channel(), payload).Result()
	if err != nil {
		c.purgeLocal(routes, prefix)
		return res, fmt.Errorf("cache: redis purge: %w", err)
	}
	// This instance hears its own message; should its subscription be down, its
	// tier serves nothing until it is back, and then the epoch empties it.
	//
	// On Cluster, PUBLISH counts only the subscribers of the node it ran on, so the
	// wait may end before instances subscribed elsewhere have acknowledged.
	deadline := time.Now().Add(ackWait)
	for {
		n, err := c.rt.acks(ctx, msg.ID)
		if err != nil {
			return res, fmt.Errorf("cache: redis purge: %w", err)
		}
		res.Instances = int(n)
		if n >= receivers || time.Now().After(deadline) {
			return res, nil
		}
		select {
		case <-time.After(5 * time.Millisecond):
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// purgeLocal empties the matching entries of the in-process tier.
func (c *Cache) purgeLocal(routes []string, prefix string) int {
	c.purges.Add(1)
	if c.mem == nil {
		return 0
	}
	n := c.mem.purge(routes, prefix)
	// A fill that read Redis before the purge may put its entry in after the
	// sweep; it saw the counter before the Add above, so it will not.
	return n
}

// follow keeps a subscription to the purge channel up until ctx ends, and applies
// every purge it hears to the in-process tier.
func (c *Cache) follow(ctx context.Context) {
	known := int64(-1)
	backoff := 100 * time.Millisecond
	for {
		err := c.subscribe(ctx, &known)
		was := c.subscribed.Swap(false)
		if ctx.Err() != nil {
			return
		}
		if was {
			c.log.Warn("response cache: purge subscription lost; the in-process tier is not used until it is back", "err", err)
			backoff = 100 * time.Millisecond
		} else {
			c.log.Debug("response cache: subscribing to purges failed", "err", err)
		}
		select {
		case <-time.After(backoff):
			backoff = min(2*backoff, 5*time.Second)
		case <-ctx.Done():
			return
		}
	}
}

// subscribe runs one subscription until it fails. A subscription that goes a
// second without a message is pinged; one that then stays silent another second is
// taken for dead (a hung Redis accepts connections and answers nothing).
func (c *Cache) subscribe(ctx context.Context, known *int64) error {
	ps := c.rt.client.Subscribe(ctx, c.rt.channel())
	defer ps.Close()
	wait := c.rt.timeout + time.Second
	msg, err := ps.ReceiveTimeout(ctx, wait)
	if err != nil {
		return err
	}
	if _, ok := msg.(*redis.Subscription); !ok {
		return fmt.Errorf("cache: subscribing: unexpected %T", msg)
	}
	epoch, err := c.rt.epoch(ctx)
	if err != nil {
		return err
	}
	if *known >= 0 && epoch != *known {
		// Purges happened while the subscription was down: which entries they
		// named is lost, so every entry goes.
		c.purgeLocal(nil, "")
		c.log.Info("response cache: purges missed while unsubscribed; in-process tier emptied")
	}
	*known = epoch
	c.subscribed.Store(true)
	c.log.Info("response cache: following purges; the in-process tier is in use")
	pinged := false
	for {
		msg, err := ps.ReceiveTimeout(ctx, time.Second)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && !pinged {
				if err := ps.Ping(ctx); err != nil {
					return err
				}
				pinged = true
				continue
			}
			return err
		}
		pinged = false
		if m, ok := msg.(*redis.Message); ok {
			c.apply(ctx, m.Payload, known)
		}
	}
}

// apply carries out a purge another instance (or this one) published.
func (c *Cache) apply(ctx context.Context, payload string, known *int64) {
	var m purgeMessage
	if err := json.Unmarshal([]byte(payload), &m); err != nil {
		c.log.Warn("response cache: unreadable purge message ignored", "err", err)
		return
	}
	if len(m.Routes) == 0 {
		// A purge always names its routes; none would mean all, which is not
		// what an empty list from a bug should do.
		return
	}
	c.purgeLocal(m.Routes, m.Prefix)
	*known = max(*known, m.Epoch)
	if err := c.rt.ack(ctx, m.ID); err != nil {
		c.log.Warn("response cache: acknowledging a purge", "err", err)
	}
}
