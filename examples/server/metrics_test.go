package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/network"
)

// scrape reads url (a /metrics) with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := plainClient.Get(url)
	if err != nil {
		t.Fatalf("GET %s = %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing %s: %v", url, err)
	}
	return fams
}

// metricValue is the value of the metric name whose labels include labels
// ("key=value" pairs); for a histogram, its sample count. It is -1 when no
// such metric is exposed.
func metricValue(fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	fam := fams[name]
	if fam == nil {
		return -1
	}
next:
	for _, m := range fam.GetMetric() {
		for _, l := range labels {
			k, v, _ := strings.Cut(l, "=")
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == k && lp.GetValue() == v)
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			return m.Untyped.GetValue()
		}
	}
	return -1
}

// wantMetric fails the test unless the metric has the value want.
func wantMetric(t *testing.T, fams map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
	t.Helper()
	if got := metricValue(fams, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// awaitMetric scrapes url until the metric has the value want, for at most
// waitTimeout, and returns that scrape.
func awaitMetric(t *testing.T, url string, want float64, name string, labels ...string) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		fams := scrape(t, url)
		got := metricValue(fams, name, labels...)
		if got == want {
			return fams
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v is still %v after %v, waiting for %v", name, labels, got, waitTimeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// httpPublish publishes body to room/topic over plain HTTP with key and
// returns the status.
func httpPublish(t *testing.T, base, room, topic, key, body string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/"+room+"/pubsub/"+topic+"/publish", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := plainClient.Do(req)
	if err != nil {
		t.Fatalf("POST publish = %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestMetrics drives traffic through the server and checks that /metrics,
// read with the Prometheus text parser, moves with it.
func TestMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	addr := start(t, config{addr: "127.0.0.1:0", publishKey: "pk-test", subscribeKey: "sk-test", data: t.TempDir()})
	base := "http://" + addr
	url := base + "/metrics"

	fams := scrape(t, url)
	wantMetric(t, fams, 0, "plaza_connections", "protocol=websocket")
	wantMetric(t, fams, 0, "plaza_messages_published_total")
	wantMetric(t, fams, 0, "plaza_store_commit_duration_seconds")
	if fam := fams["plaza_messages_published_total"]; fam.GetType() != dto.MetricType_COUNTER {
		t.Errorf("plaza_messages_published_total is a %v, want a counter", fam.GetType())
	}
	if fam := fams["plaza_publish_duration_seconds"]; fam.GetType() != dto.MetricType_HISTOGRAM {
		t.Errorf("plaza_publish_duration_seconds is a %v, want a histogram", fam.GetType())
	}

	client, err := network.NewClient("ws://"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	join := func(token string) *pubsub.Room {
		t.Helper()
		r, err := pubsub.Join(ctx, client, "lobby", &pubsub.JoinOptions{Token: token})
		if err != nil {
			t.Fatalf("Join(%s) = %v", strings.SplitN(token, ":", 2)[1], err)
		}
		return r
	}
	alice, bob := join("pk-test:alice"), join("sk-test:bob")
	got := make(chan pubsub.Message, 8)
	if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
		t.Fatal(err)
	}
	first, err := alice.Publish(ctx, "chat", "one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Publish(ctx, "chat", "two"); err != nil {
		t.Fatal(err)
	}
	if status := httpPublish(t, base, "lobby", "chat", "pk-test", `{"message": "three"}`); status != 200 {
		t.Fatalf("HTTP publish with the publish key = %d", status)
	}
	if status := httpPublish(t, base, "lobby", "chat", "sk-test", `{"message": "four"}`); status != http.StatusForbidden {
		t.Fatalf("HTTP publish with the subscribe key = %d, want 403", status)
	}
	for i := range 3 {
		select {
		case <-got:
		case <-ctx.Done():
			t.Fatalf("bob received %d of 3 messages", i)
		}
	}
	if _, err := bob.GetHistory(ctx, "chat", pubsub.After(first.ID)); err != nil {
		t.Fatal(err)
	}

	fams = scrape(t, url)
	wantMetric(t, fams, 2, "plaza_connections", "protocol=websocket")
	wantMetric(t, fams, 2, "plaza_connection_opens_total", "protocol=websocket")
	wantMetric(t, fams, 1, "plaza_subscriptions")
	wantMetric(t, fams, 2, "plaza_publishes_total", "route=websocket", "code=OK")
	wantMetric(t, fams, 1, "plaza_publishes_total", "route=http", "code=OK")
	wantMetric(t, fams, 1, "plaza_publishes_total", "route=http", "code=PERMISSION_DENIED")
	wantMetric(t, fams, 3, "plaza_messages_published_total")
	wantMetric(t, fams, 3, "plaza_deliveries_total")
	wantMetric(t, fams, 3, "plaza_publish_duration_seconds")
	wantMetric(t, fams, 3, "plaza_store_commit_duration_seconds")
	wantMetric(t, fams, 0, "plaza_store_commit_errors_total")
	wantMetric(t, fams, 1, "plaza_history_queries_total", "code=OK")
	wantMetric(t, fams, 1, "plaza_gap_fills_total")
	if size := metricValue(fams, "plaza_history_store_bytes"); size <= 0 {
		t.Errorf("plaza_history_store_bytes = %v, want the size of history.db", size)
	}

	// Both leave: the connections close normally and their subscriptions go.
	bob.Leave(ctx)
	alice.Leave(ctx)
	fams = awaitMetric(t, url, 2, "plaza_connection_closes_total", "protocol=websocket", "code=1000")
	wantMetric(t, fams, 0, "plaza_connections", "protocol=websocket")
	wantMetric(t, fams, 0, "plaza_subscriptions")
	wantMetric(t, fams, 0, "plaza_reconnects_total")

	// alice comes back at once: a reconnect.
	alice = join("pk-test:alice")
	defer alice.Leave(ctx)
	wantMetric(t, scrape(t, url), 1, "plaza_reconnects_total")
}

// With -metrics-addr, /metrics is served there and not on the main address.
func TestMetricsAddr(t *testing.T) {
	at := startWith(t, config{addr: "127.0.0.1:0", metricsAddr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true}, io.Discard, io.Discard)
	if at.metrics == "" || at.metrics == at.addr {
		t.Fatalf("metrics address %q, want a listener of its own", at.metrics)
	}
	wantMetric(t, scrape(t, "http://"+at.metrics+"/metrics"), 0, "plaza_connections", "protocol=websocket")
	for _, path := range []string{"/healthz", "/readyz"} {
		for _, a := range []string{at.addr, at.metrics} {
			resp, err := plainClient.Get("http://" + a + path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET %s%s = %d, want 200", a, path, resp.StatusCode)
			}
		}
	}
	resp, err := plainClient.Get("http://" + at.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the main address = %d, want 404 with -metrics-addr", resp.StatusCode)
	}
}

func TestIsPublishPath(t *testing.T) {
	for path, want := range map[string]bool{
		"/lobby/pubsub/chat/publish":   true,
		"/lobby/publish/chat":          true,
		"/lobby/pubsub/chat/history":   false,
		"/lobby/ws":                    false,
		"/publish":                     false,
		"/lobby/pubsub/chat/publish/x": false,
	} {
		if got := isPublishPath(path); got != want {
			t.Errorf("isPublishPath(%q) = %v, want %v", path, got, want)
		}
	}
}

// A close code a client chooses itself is counted as "other": clients
// cannot add series to plaza_connection_closes_total, one per code of the
// thousands they may send.
func TestMetricsCloseCodesBounded(t *testing.T) {
	base := "http://" + start(t, config{addr: "127.0.0.1:0", publishKey: "pk", subscribeKey: "sk", memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/lobby/ws", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer pk"}}})
	if err != nil {
		t.Fatalf("Dial() = %v", err)
	}
	defer ws.CloseNow()
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatalf("reading the welcome: %v", err)
	}
	if err := ws.Close(4321, "mine"); err != nil {
		t.Fatalf("Close(4321) = %v", err)
	}
	fams := awaitMetric(t, base+"/metrics", 1, "plaza_connection_closes_total", "protocol=websocket")
	if got := metricValue(fams, "plaza_connection_closes_total", "protocol=websocket", "code=other"); got != 1 {
		t.Errorf(`plaza_connection_closes_total{code="other"} = %v after a client closed with 4321, want 1; the series: %v`, got, fams["plaza_connection_closes_total"])
	}
}
