package daojia

import (
	"fmt"
	"os"
	"testing"

	"github.com/signgate/signgate/internal/testsecret"
)

// TestMain fails the package when its output (every t.Log, failure and -v line)
// holds a service secret: the demo partner's, which these tests sign with, or the
// suite's. The tests check logs and answers themselves (TestLogsNeverHoldSecretOrToken,
// TestRelayAnswersBrokenPlatformWithAnEnvelope).
func TestMain(m *testing.M) {
	stop := testsecret.Watch(testSecret, "wrongSecret", testsecret.DaojiaSecret)
	code := m.Run()
	if found := stop(); len(found) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the test output holds the secrets %q\n", found)
		code = 1
	}
	os.Exit(code)
}
