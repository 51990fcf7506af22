package state

import (
	"context"
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
		queue:   make(chan *pending, maxBatch*pipelineWorkers),
		stop:    make(chan struct{}),
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

func (p *autoPipeline) work() {
	batch := make([]*pending, 0, maxBatch)
	for {
		select {
		case <-p.stop:
			return
		case first := <-p.queue:
			batch = append(batch[:0], first)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case pd := <-p.queue:
				batch = append(batch, pd)
			default:
				break drain
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		pipe := p.client.Pipeline()
		for _, pd := range batch {
			_ = pipe.Process(ctx, pd.cmd)
		}
		// Exec sets each command's own error; a transport error lands on all.
		_, _ = pipe.Exec(ctx)
		cancel()
		for _, pd := range batch {
			pd.done <- struct{}{}
		}
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
// one call per decision); the rare script management calls go straight to the client.
type pipelinedScripter struct {
	p      *autoPipeline
	client redis.UniversalClient
}

var _ redis.Scripter = pipelinedScripter{}

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
