package socketio

import (
	"net/http"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if dialect := os.Getenv(benchServerEnv); dialect != "" {
		os.Exit(benchServer(dialect)) // a child of BenchmarkFanout
	}
	goleak.VerifyTestMain(m)
}

// waitTimeout bounds every wait for something that should happen; it guards
// against deadlocks and measures nothing.
const waitTimeout = 20 * time.Second

// client is the HTTP client of the tests: no request waits longer than
// waitTimeout for its answer, whatever the server does.
var client = &http.Client{Timeout: waitTimeout}

// t0 is where fake clocks start.
var t0 = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// readFile returns the contents of path.
func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}
