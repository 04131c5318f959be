package network

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
)

// scenario is one row of testdata/conformance/scenarios.json, which both
// clients run: TestConformanceGo with Rooms on a Client, and the plaza.js
// suite (js/test/conformance.test.mjs) with plaza.js. Both must produce the
// deliveries and history pages the row wants, so they agree.
type scenario struct {
	Name      string              `json:"name"`
	Clients   []string            `json:"clients"`
	Subscribe map[string][]string `json:"subscribe"`
	Steps     []struct {
		As       string            `json:"as"`
		Topic    string            `json:"topic"`
		Payload  json.RawMessage   `json:"payload"`
		To       []string          `json:"to"`
		Persist  *bool             `json:"persist"`
		Metadata map[string]string `json:"metadata"`
	} `json:"steps"`
	History []struct {
		As         string   `json:"as"`
		Topic      string   `json:"topic"`
		Limit      int      `json:"limit"`
		BeforeStep *int     `json:"beforeStep"`
		AfterStep  *int     `json:"afterStep"`
		From       []string `json:"from"`
	} `json:"history"`
	Want scenarioResult `json:"want"`
}

// scenarioResult is what a scenario produced: per client, its deliveries
// as [from, topic, payload], and each history page's payloads.
type scenarioResult struct {
	Deliveries map[string][][3]any `json:"deliveries"`
	History    []historyResult     `json:"history,omitempty"`
}

type historyResult struct {
	Payloads []any `json:"payloads"`
	HasMore  bool  `json:"hasMore"`
}

func loadScenarios(tb testing.TB) []scenario {
	tb.Helper()
	b, err := os.ReadFile("testdata/conformance/scenarios.json")
	if err != nil {
		tb.Fatal(err)
	}
	var ss []scenario
	if err := json.Unmarshal(b, &ss); err != nil {
		tb.Fatalf("scenarios.json: %v", err)
	}
	return ss
}

// TestConformanceGo runs the conformance scenarios with Go Rooms over a
// Client; TestPlazaJS runs the same rows with plaza.js.
func TestConformanceGo(t *testing.T) {
	js := newJSServer(t)
	client, err := NewClient(js.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, sc := range loadScenarios(t) {
		t.Run(sc.Name, func(t *testing.T) {
			got := runScenario(t, client, fmt.Sprintf("conf-%d-go", i), sc)
			if diff := cmp.Diff(sc.Want, got); diff != "" {
				t.Errorf("scenario %q (-want +got):\n%s", sc.Name, diff)
			}
		})
	}
}

func runScenario(t *testing.T, tr pubsub.Transport, roomName string, sc scenario) scenarioResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var mu sync.Mutex
	res := scenarioResult{Deliveries: map[string][][3]any{}}
	rooms := map[string]*pubsub.Room{}
	ends := map[string]chan struct{}{} // client+topic: the end marker arrived
	for _, name := range append(append([]string(nil), sc.Clients...), "zed") {
		r, err := pubsub.Join(ctx, tr, roomName, &pubsub.JoinOptions{Token: name})
		if err != nil {
			t.Fatalf("Join(%s) = %v", name, err)
		}
		defer r.Leave(context.Background())
		rooms[name] = r
	}
	for _, name := range sc.Clients {
		for _, topic := range sc.Subscribe[name] {
			end := make(chan struct{})
			ends[name+" "+topic] = end
			_, err := rooms[name].Subscribe(ctx, topic, func(m pubsub.Message) {
				var p any
				_ = json.Unmarshal(m.Payload, &p)
				if m.From == "zed" {
					close(end)
					return
				}
				mu.Lock()
				res.Deliveries[name] = append(res.Deliveries[name], [3]any{m.From, m.Topic, p})
				mu.Unlock()
			})
			if err != nil {
				t.Fatalf("%s: Subscribe(%q) = %v", name, topic, err)
			}
		}
	}
	var ids []pubsub.ID
	for i, st := range sc.Steps {
		var opts []pubsub.PublishOption
		if len(st.To) > 0 {
			opts = append(opts, pubsub.To(st.To...))
		}
		if st.Persist != nil {
			opts = append(opts, pubsub.Persist(*st.Persist))
		}
		if st.Metadata != nil {
			opts = append(opts, pubsub.Metadata(st.Metadata))
		}
		m, err := rooms[st.As].Publish(ctx, st.Topic, st.Payload, opts...)
		if err != nil {
			t.Fatalf("step %d: %s: Publish(%q) = %v", i, st.As, st.Topic, err)
		}
		ids = append(ids, m.ID)
	}
	marked := map[string]bool{}
	for _, topics := range sc.Subscribe {
		for _, topic := range topics {
			if !marked[topic] {
				marked[topic] = true
				if _, err := rooms["zed"].Publish(ctx, topic, json.RawMessage(`{"end":true}`)); err != nil {
					t.Fatalf("the end marker on %q: %v", topic, err)
				}
			}
		}
	}
	for key, end := range ends {
		select {
		case <-end:
		case <-time.After(waitTimeout):
			t.Fatalf("%s: no end marker within %v", key, waitTimeout)
		}
	}
	for i, h := range sc.History {
		var opts []pubsub.HistoryOption
		if h.Limit > 0 {
			opts = append(opts, pubsub.Limit(h.Limit))
		}
		if h.BeforeStep != nil {
			opts = append(opts, pubsub.Before(ids[*h.BeforeStep]))
		}
		if h.AfterStep != nil {
			opts = append(opts, pubsub.After(ids[*h.AfterStep]))
		}
		if len(h.From) > 0 {
			opts = append(opts, pubsub.From(h.From...))
		}
		page, err := rooms[h.As].GetHistory(ctx, h.Topic, opts...)
		if err != nil {
			t.Fatalf("history %d: %v", i, err)
		}
		hr := historyResult{Payloads: []any{}, HasMore: page.HasMore}
		for _, m := range page.Messages {
			var p any
			_ = json.Unmarshal(m.Payload, &p)
			hr.Payloads = append(hr.Payloads, p)
		}
		res.History = append(res.History, hr)
	}
	mu.Lock()
	defer mu.Unlock()
	return res
}
