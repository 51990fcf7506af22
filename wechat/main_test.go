package wechat

import (
	"fmt"
	"os"
	"testing"

	"github.com/signgate/signgate/internal/testsecret"
)

// TestMain fails the package when its output (every t.Log, failure and -v line)
// holds the AppSecret the tests configure. The tests check errors and logs
// themselves (TestNothingSecretInErrorsOrLogs).
func TestMain(m *testing.M) {
	stop := testsecret.Watch(testSecret)
	code := m.Run()
	if found := stop(); len(found) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the test output holds the secrets %q\n", found)
		code = 1
	}
	os.Exit(code)
}
