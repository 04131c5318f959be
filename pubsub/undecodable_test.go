package pubsub_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/plazahq/plaza/pubsub"
)

// undecodableHistory is a transport whose history pages mark some messages
// as a transport that could not decode them would: Err set, payload gone.
type undecodableHistory struct {
	pubsub.Transport
	bad map[string]bool // payloads to mark
}

func (u *undecodableHistory) Connect(ctx context.Context, req pubsub.ConnectRequest) (pubsub.Conn, error) {
	c, err := u.Transport.Connect(ctx, req)
	if err != nil {
		return nil, err
	}
	return &undecodableConn{Conn: c, bad: u.bad}, nil
}

type undecodableConn struct {
	pubsub.Conn
	bad map[string]bool
}

func (c *undecodableConn) History(ctx context.Context, req pubsub.HistoryRequest) (pubsub.HistoryPage, error) {
	p, err := c.Conn.History(ctx, req)
	for i := range p.Messages {
		m := &p.Messages[i]
		if c.bad[string(m.Payload)] {
			m.Err = pubsub.Errorf(pubsub.CodeInvalidPayload, "message %v cannot be decoded", m.ID)
			m.Payload = nil
		}
	}
	return p, err
}

// TestGetHistorySkipsUndecodable pages through a history in which the
// transport could not decode some messages: GetHistory leaves them out,
// counts them and reports them to OnError, and pages on past a page of
// nothing else.
func TestGetHistorySkipsUndecodable(t *testing.T) {
	t.Parallel()
	hub := newHub(t)
	ctx := context.Background()
	alice := join(t, hub, "alice", nil)
	var ids []pubsub.ID
	for i := 1; i <= 6; i++ {
		m, err := alice.Publish(ctx, "chat", i)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	var mu sync.Mutex
	var reported []error
	tr := &undecodableHistory{Transport: hub, bad: map[string]bool{"4": true, "5": true, "6": true}}
	bob := join(t, tr, "bob", &pubsub.JoinOptions{OnError: func(err error) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, err)
	}})

	tests := []struct {
		name    string
		opts    []pubsub.HistoryOption
		want    []string
		hasMore bool
		skipped int
	}{
		{"newest page, all undecodable", []pubsub.HistoryOption{pubsub.Limit(3)}, []string{"1", "2", "3"}, false, 3},
		{"some undecodable", []pubsub.HistoryOption{pubsub.Limit(2)}, []string{"3"}, true, 3},
		{"after, all undecodable to the end", []pubsub.HistoryOption{pubsub.After(ids[2]), pubsub.Limit(2)}, []string{}, false, 3},
		{"before, none undecodable", []pubsub.HistoryOption{pubsub.Before(ids[3])}, []string{"1", "2", "3"}, false, 0},
	}
	total := 0
	for _, tt := range tests {
		before := bob.Stats().Undecodable
		p, err := bob.GetHistory(ctx, "chat", tt.opts...)
		if err != nil {
			t.Fatalf("GetHistory(%s) = %v", tt.name, err)
		}
		got := []string{}
		for _, m := range p.Messages {
			got = append(got, string(m.Payload))
		}
		if diff := cmp.Diff(tt.want, got); diff != "" || p.HasMore != tt.hasMore {
			t.Errorf("GetHistory(%s): HasMore %v, want %v; payloads (-want +got):\n%s", tt.name, p.HasMore, tt.hasMore, diff)
		}
		if n := bob.Stats().Undecodable - before; n != uint64(tt.skipped) {
			t.Errorf("GetHistory(%s) counted %d undecodable messages, want %d", tt.name, n, tt.skipped)
		}
		total += tt.skipped
	}
	waitUntil(t, strconv.Itoa(total)+" reports to OnError", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reported) >= total
	})
	mu.Lock()
	defer mu.Unlock()
	for _, err := range reported {
		if !errors.Is(err, pubsub.ErrInvalidPayload) {
			t.Errorf("OnError received %v, want INVALID_PAYLOAD", err)
		}
	}
	if len(reported) != total {
		t.Errorf("OnError received %d reports, want %d", len(reported), total)
	}
}
