package state

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// autoPipeline sends the commands that many requests issue at the same moment as one
// pipeline: one write and one read for a batch instead of one each. A gateway makes
// one Redis decision per signed or rate-limited request, so under load most of its
// Redis cost is syscalls, not Redis; batching takes that cost down by the batch size.
// A lone request waits no longer than before: a worker picks it up at once and sends
// a batch of one.
type autoPipeline struct {
	client  redis.UniversalClient
	timeout time.Duration
	// reload, for a Cluster, has the client fetch the slot map again: go-redis does
	// so by itself on MOVED, and for single commands on a broken connection, but a
	// pipeline to a master that died would keep going to it until the map's next
	// periodic refresh, a minute later.
	reload func()
	// cluster is the client when it is a Cluster's: batches are split by master.
	cluster *redis.ClusterClient
	queue   chan *pending
	stop    chan struct{}
	wg      sync.WaitGroup
}

// pending is one command waiting for its batch.
type pending struct {
	cmd  redis.Cmder
	done chan struct{}
}

var pendingPool = sync.Pool{New: func() any { return &pending{done: make(chan struct{}, 1)} }}

const (
	// pipelineWorkers is how many batches may be in flight at once: several, so one
	// slow round trip does not hold up the next batch.
	pipelineWorkers = 4
	// maxBatch bounds one pipeline, so a flood cannot build one unbounded reply.
	maxBatch = 128
)

func newAutoPipeline(client redis.UniversalClient, timeout time.Duration) *autoPipeline {
	p := &autoPipeline{
		client:  client,
		timeout: timeout,
		reload:  func() {},
		queue:   make(chan *pending, maxBatch*pipelineWorkers),
		stop:    make(chan struct{}),
	}
	if c, ok := client.(*redis.ClusterClient); ok {
		p.cluster = c
		p.reload = func() { c.ReloadState(context.Background()) } // asynchronous, coalesced
	}
	for range pipelineWorkers {
		p.wg.Go(p.work)
	}
	return p
}

// do runs cmd in the next batch and waits for it. The command's own result and
// error are on cmd; do returns ctx's error instead when ctx ends first, and then cmd
// must not be read: a worker may still be writing it.
func (p *autoPipeline) do(ctx context.Context, cmd redis.Cmder) error {
	if err := ctx.Err(); err != nil {
		// Already over: do not send it at all (a SET NX sent now would record a
		// nonce for a request that was given up on).
		return err
	}
	pd := pendingPool.Get().(*pending)
	pd.cmd = cmd
	select {
	case p.queue <- pd:
	case <-ctx.Done():
		pd.cmd = nil
		pendingPool.Put(pd)
		return ctx.Err()
	}
	select {
	case <-pd.done:
		pd.cmd = nil
		pendingPool.Put(pd)
		return nil
	case <-ctx.Done():
		// The worker still owns pd and cmd; neither is reused.
		return ctx.Err()
	}
}

// doAll runs cmds in the next batch, together, and waits for all of them: a
// request's decisions in several hash slots of a Cluster, sent to their nodes side by
// side. As with do, a ctx that ends first is returned and no cmd may be read.
func (p *autoPipeline) doAll(ctx context.Context, cmds []redis.Cmder) error {
	if len(cmds) == 1 {
		return p.do(ctx, cmds[0])
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	pds := make([]*pending, 0, len(cmds))
	for _, cmd := range cmds {
		pd := pendingPool.Get().(*pending)
		pd.cmd = cmd
		select {
		case p.queue <- pd:
			pds = append(pds, pd)
		case <-ctx.Done():
			// Those queued are the workers'; the rest were never sent.
			pd.cmd = nil
			pendingPool.Put(pd)
			return ctx.Err()
		}
	}
	for _, pd := range pds {
		select {
		case <-pd.done:
			pd.cmd = nil
			pendingPool.Put(pd)
		case <-ctx.Done():
			// The workers still own this pd and the ones after it; none is reused.
			return ctx.Err()
		}
	}
	return nil
}

func (p *autoPipeline) work() {
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case <-p.stop:
			return
		case first := <-p.queue:
			batch = append(batch[:0], first)
		}
		// Let the requests that are runnable now reach their Redis call and join
		// this batch: under load, one write and one read then carry several
		// commands rather than one each. Alone, a request is not held up: with
		// nothing else to run, Gosched returns at once.
		runtime.Gosched()
	drain:
		for len(batch) < maxBatch {
			select {
			case pd := <-p.queue:
				batch = append(batch, pd)
			default:
				break drain
			}
		}
		if p.cluster == nil {
			p.exec(batch)
			continue
		}
		// On a Cluster, one pipeline per master: a pipeline returns when all its
		// commands have, and a master that died holds its commands for retries
		// and dial timeouts until the replica has taken over. The other masters'
		// commands must not wait for that.
		groups := p.byMaster(batch)
		if len(groups) == 1 {
			p.exec(batch)
			continue
		}
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Go(func() { p.exec(g) })
		}
		wg.Wait()
	}
}

// exec sends batch as one pipeline and hands each command back to its caller.
func (p *autoPipeline) exec(batch []*pending) {
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	pipe := p.client.Pipeline()
	for _, pd := range batch {
		_ = pipe.Process(ctx, pd.cmd)
	}
	// Exec sets each command's own error; a transport error lands on all.
	_, _ = pipe.Exec(ctx)
	cancel()
	for _, pd := range batch {
		if k := ErrorKind(pd.cmd.Err()); k == ErrConnection || k == ErrTimeout || k == ErrClusterDown {
			p.reload()
			break
		}
	}
	for _, pd := range batch {
		pd.done <- struct{}{}
	}
}

// byMaster splits batch by the master its first key's slot is served by, as the
// cluster client's slot map says now; commands it cannot place go together.
func (p *autoPipeline) byMaster(batch []*pending) [][]*pending {
	var (
		groups [][]*pending
		nodes  []*redis.Client
	)
	for _, pd := range batch {
		var node *redis.Client
		if key, ok := firstKey(pd.cmd); ok {
			node, _ = p.cluster.MasterForKey(context.Background(), key)
		}
		i := slices.Index(nodes, node)
		if i < 0 {
			i = len(nodes)
			nodes = append(nodes, node)
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], pd)
	}
	return groups
}

// firstKey is the key a command sent through the auto-pipeline is routed by: SET's
// and SETNX's first argument, a script's first key.
func firstKey(cmd redis.Cmder) (string, bool) {
	args := cmd.Args()
	if len(args) < 2 {
		return "", false
	}
	switch name, _ := args[0].(string); name {
	case "eval", "evalsha":
		if len(args) < 4 {
			return "", false
		}
		if n, _ := args[2].(int); n < 1 {
			return "", false
		}
		k, ok := args[3].(string)
		return k, ok
	default:
		k, ok := args[1].(string)
		return k, ok
	}
}

// close stops the workers. Call it with the client closed or closing, so a worker
// blocked on a hung Redis returns at once instead of at its timeout.
func (p *autoPipeline) close(closeClient func() error) error {
	close(p.stop)
	err := closeClient()
	p.wg.Wait()
	return err
}

// pipelinedScripter runs EVAL and EVALSHA through the auto-pipeline (the rate limiter's
// one call per request); the rare script management calls go straight to the client.
// It is a ratelimit.Batcher: Batch sends a request's scripts in one pipeline, and
// Cluster says whether they must be one per hash slot.
type pipelinedScripter struct {
	p       *autoPipeline
	client  redis.UniversalClient
	cluster bool
}

var _ redis.Scripter = pipelinedScripter{}

// Batch runs cmds in the next batch of the auto-pipeline and waits for them.
func (s pipelinedScripter) Batch(ctx context.Context, cmds ...redis.Cmder) error {
	return s.p.doAll(ctx, cmds)
}

// Cluster reports whether the client is a Redis Cluster client.
func (s pipelinedScripter) Cluster() bool { return s.cluster }

func (s pipelinedScripter) eval(ctx context.Context, name, script string, keys []string, args []any) *redis.Cmd {
	cmdArgs := make([]any, 3, 3+len(keys)+len(args))
	cmdArgs[0], cmdArgs[1], cmdArgs[2] = name, script, len(keys)
	for _, k := range keys {
		cmdArgs = append(cmdArgs, k)
	}
	cmdArgs = append(cmdArgs, args...)
	cmd := redis.NewCmd(ctx, cmdArgs...)
	if err := s.p.do(ctx, cmd); err != nil {
		abandoned := redis.NewCmd(ctx)
		abandoned.SetErr(err)
		return abandoned
	}
	return cmd
}

func (s pipelinedScripter) Eval(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.eval(ctx, "eval", script, keys, args)
}

func (s pipelinedScripter) EvalSha(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.eval(ctx, "evalsha", sha1, keys, args)
}

func (s pipelinedScripter) EvalRO(ctx context.Context, script string, keys []string, args ...any) *redis.Cmd {
	return s.client.EvalRO(ctx, script, keys, args...)
}

func (s pipelinedScripter) EvalShaRO(ctx context.Context, sha1 string, keys []string, args ...any) *redis.Cmd {
	return s.client.EvalShaRO(ctx, sha1, keys, args...)
}

func (s pipelinedScripter) ScriptExists(ctx context.Context, hashes ...string) *redis.BoolSliceCmd {
	return s.client.ScriptExists(ctx, hashes...)
}

func (s pipelinedScripter) ScriptLoad(ctx context.Context, script string) *redis.StringCmd {
	return s.client.ScriptLoad(ctx, script)
}
