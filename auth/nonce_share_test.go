package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/signgate/signgate/daojia"
	"github.com/signgate/signgate/secret"
	"github.com/signgate/signgate/state"
)

// With the in-memory nonce store, each client's nonces, and 58到家's callback signs,
// are their own owner in the store (the replay keys name them), so one partner
// filling its share answers 503 state_unavailable to itself alone: every other
// client's signed calls and every callback still pass, and its own replays are
// still recognised as replays.
func TestOnePartnerCannotFillTheNonceStoreForEveryone(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	v := &Verifier{
		Nonces: state.NewMemory(state.MemoryOptions{MaxEntries: 4096, MaxPerOwner: 256, Now: clock}),
		Skew:   10 * time.Minute,
		Now:    clock,
	}
	const key = "greedy-partner-secret"
	signed := func(client string, i int) error {
		r := signedRequest(t, "POST", "/api/orders", []byte(`{}`), []byte(key), now, fmt.Sprintf("n%07d-%s", i, client))
		return v.VerifyHMAC(ctx, r, []byte(`{}`), client, secret.Secret(key))
	}

	// The greedy partner sends fresh nonces until the store refuses it: well before
	// the store itself (4096) is full.
	refusedAt := -1
	for i := range 4096 {
		if err := signed("greedy", i); err != nil {
			wantAPIError(t, err, 503, "state_unavailable", "replay protection is unavailable")
			refusedAt = i
			break
		}
	}
	if refusedAt < 200 || refusedAt > 256 {
		t.Fatalf("the greedy partner was refused after %d nonces, want about its share of 256", refusedAt)
	}
	wantAPIError(t, signed("greedy", 0), 401, "replayed", "nonce")

	// Everyone else goes on.
	for i := range 200 {
		if err := signed("quiet-partner", i); err != nil {
			t.Fatalf("another partner's signed call %d: %v", i, err)
		}
	}
	for i := range 200 {
		body, err := daojia.SignedBody([]byte(fmt.Sprintf(`{"orderId":"o%d"}`, i)), vectorServiceKey, "", vectorSecret, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyDaojia(ctx, body, jsonType, "daojia", vectorServiceKey, vectorSecret); err != nil {
			t.Fatalf("58到家 callback %d: %v", i, err)
		}
	}
}
