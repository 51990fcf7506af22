package testsecret

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

func TestFind(t *testing.T) {
	if got := Find([]byte("a log line with " + DaojiaSecret + " in it")); !slices.Equal(got, []string{DaojiaSecret}) {
		t.Fatalf("Find = %q", got)
	}
	if got := Find([]byte("[redacted]")); len(got) != 0 {
		t.Fatalf("Find = %q", got)
	}
	if got := Find([]byte("x-needle-x"), "needle", ""); !slices.Equal(got, []string{"needle"}) {
		t.Fatalf("Find with needles = %q", got)
	}
}

// Watch sees a needle written in two pieces, through either file, and passes the
// output on.
func TestWatch(t *testing.T) {
	const needle = "watch-test-needle-0123456789"
	out, errOut := os.Stdout, os.Stderr
	stop := Watch(needle, "never-written-needle")
	fmt.Fprint(os.Stdout, "before "+needle[:9])
	fmt.Fprint(os.Stdout, needle[9:]+" after\n")
	fmt.Fprint(os.Stderr, "unrelated\n")
	if got := stop(); !slices.Equal(got, []string{needle}) {
		t.Fatalf("Watch found %q, want the needle once", got)
	}
	if os.Stdout != out || os.Stderr != errOut {
		t.Fatal("stdout and stderr not restored")
	}
}
