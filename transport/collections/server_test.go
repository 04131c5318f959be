package collections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
	"github.com/plazahq/plaza/transport/network"
)

func TestEvents(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	c.subscribe("posts", "create", "update", "delete")

	rec := map[string]any{"id": "550e8400-e29b-41d4-a716-446655440000", "title": "New Post"}
	for _, op := range []collections.Operation{collections.Create, collections.Update, collections.Delete} {
		f.publish(t, "posts", op, rec)
		got := c.next("the " + string(op) + " event")
		if got["type"] != "posts."+string(op) {
			t.Errorf("event type = %v, want posts.%s", got["type"], op)
		}
		if ts, _ := got["timestamp"].(string); ts != "2026-01-17T12:00:00.000Z" {
			t.Errorf("event timestamp = %q, want 2026-01-17T12:00:00.000Z", ts)
		}
		data, _ := got["data"].(map[string]any)
		if data["id"] != rec["id"] || data["title"] != "New Post" {
			t.Errorf("event data = %v, want %v", got["data"], rec)
		}
	}

	// The events are in the room's history, one message per change.
	page, err := f.room.GetHistory(ctxT(t), "posts")
	if err != nil {
		t.Fatalf("GetHistory(posts) = %v", err)
	}
	if len(page.Messages) != 3 || page.Messages[2].Metadata[collections.MetadataOperation] != "delete" {
		t.Errorf("history of posts = %d messages (last %v), want 3 ending with op=delete", len(page.Messages), page.Messages)
	}
}

func TestOperationsFilter(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	creates := f.dial(t, "alice")
	creates.subscribe("posts", "create")
	all := f.dial(t, "bob")
	all.subscribe("posts") // no operations: all of them

	f.publish(t, "posts", collections.Update, map[string]any{"id": "1"})
	f.publish(t, "posts", collections.Delete, map[string]any{"id": "1"})
	f.publish(t, "posts", collections.Create, map[string]any{"id": "2"})
	if got := creates.next("the create event"); got["type"] != "posts.create" {
		t.Errorf("subscriber to [create] got %v first, want the posts.create event", got)
	}
	for _, want := range []string{"posts.update", "posts.delete", "posts.create"} {
		if got := all.next(want); got["type"] != want {
			t.Errorf("subscriber to all operations got %v, want %s", got, want)
		}
	}

	// Subscribing again replaces the filter.
	creates.subscribe("posts", "delete")
	f.publish(t, "posts", collections.Create, map[string]any{"id": "3"})
	f.publish(t, "posts", collections.Delete, map[string]any{"id": "3"})
	if got := creates.next("the delete event"); got["type"] != "posts.delete" {
		t.Errorf("after resubscribing to [delete], got %v, want posts.delete", got)
	}
}

func TestUnsubscribe(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	c.subscribe("posts")
	c.subscribe("comments")
	c.send(`{"action":"unsubscribe","collection":"posts"}`)
	if got := c.next("the unsubscribe reply"); got["status"] != "unsubscribed" || got["collection"] != "posts" {
		t.Fatalf("unsubscribe reply = %v, want unsubscribed posts", got)
	}
	f.publish(t, "posts", collections.Create, map[string]any{"id": "1"})
	f.publish(t, "comments", collections.Create, map[string]any{"id": "2"})
	if got := c.next("the comments event"); got["type"] != "comments.create" {
		t.Errorf("after unsubscribing from posts got %v, want comments.create", got)
	}
}

func TestPing(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	for _, frame := range []string{`{"action":"ping"}`, "ping"} {
		c.send(frame)
		if got := c.next("pong"); got["type"] != "pong" || len(got) != 1 {
			t.Errorf("%s → %v, want {\"type\":\"pong\"}", frame, got)
		}
	}
}

func TestHeartbeat(t *testing.T) {
	f := newFixture(t, collections.Options{})
	c := f.dial(t, "alice")
	c.subscribe("posts") // the connection is set up, its heartbeat armed
	for i := 1; i <= 2; i++ {
		f.clock.Advance(collections.DefaultHeartbeat)
		got := c.next("a heartbeat")
		want := t0.Add(time.Duration(i) * collections.DefaultHeartbeat).Format("2006-01-02T15:04:05.000Z")
		if got["type"] != "heartbeat" || got["timestamp"] != want {
			t.Errorf("after %d×30s got %v, want a heartbeat at %s", i, got, want)
		}
	}
}

func TestBadFramesKeepTheConnection(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	tests := []struct {
		frame, code, says string
	}{
		{`{"action":"jump"}`, "INVALID_REQUEST", "unknown action"},
		{`{"collection":"posts"}`, "INVALID_REQUEST", "no \"action\""},
		{`{"action":"subscribe"}`, "INVALID_REQUEST", "no \"collection\""},
		{`{"action":"subscribe","collection":"po sts"}`, "INVALID_REQUEST", "character"},
		{`{"action":"subscribe","collection":"posts","operations":["upsert"]}`, "INVALID_REQUEST", "unknown operation"},
		{`{"action":"subscribe","collection":"posts","operations":[]}`, "INVALID_REQUEST", "empty"},
		{`{"action":"subscribe","collection":"posts","operations":"create"}`, "INVALID_REQUEST", "malformed"},
		{`{"action":`, "INVALID_REQUEST", "malformed"},
		{`["subscribe"]`, "INVALID_REQUEST", "malformed"},
		{`pong`, "INVALID_REQUEST", "malformed"},
	}
	for _, tt := range tests {
		c.send(tt.frame)
		got := c.next("the error reply to " + tt.frame)
		msg, _ := got["message"].(string)
		if got["type"] != "error" || got["code"] != tt.code || !strings.Contains(msg, tt.says) {
			t.Errorf("%s → %v, want an error %s saying %q", tt.frame, got, tt.code, tt.says)
		}
	}
	c.subscribe("posts")
	f.publish(t, "posts", collections.Create, map[string]any{"id": "1"})
	if got := c.next("the event after bad frames"); got["type"] != "posts.create" {
		t.Errorf("after bad frames got %v, want posts.create", got)
	}
}

func TestSubscriptionCap(t *testing.T) {
	for _, max := range []int{0, 3} {
		t.Run(fmt.Sprint("max=", max), func(t *testing.T) {
			f := newFixture(t, collections.Options{Heartbeat: -1, MaxSubscriptions: max})
			limit := max
			if limit == 0 {
				limit = collections.DefaultMaxSubscriptions
			}
			c := f.dial(t, "alice")
			for i := range limit {
				c.subscribe(fmt.Sprint("c", i))
			}
			c.subscribe("c0", "create") // the same collection again is no new subscription
			c.send(`{"action":"subscribe","collection":"one-more"}`)
			if got := c.next("the refusal"); got["code"] != string(pubsub.CodeTooManySubscriptions) || got["collection"] != "one-more" {
				t.Fatalf("subscription %d → %v, want TOO_MANY_SUBSCRIPTIONS", limit+1, got)
			}
			c.send(`{"action":"unsubscribe","collection":"c1"}`)
			c.next("the unsubscribe reply")
			c.subscribe("one-more")
		})
	}
}

func TestAuthorize(t *testing.T) {
	authorize := func(_ context.Context, id network.Identity, a pubsub.Access) error {
		if a.Room != collections.DefaultRoom || a.Action != pubsub.ActionSubscribe || a.ClientID != id.ClientID {
			return fmt.Errorf("unexpected access %+v", a)
		}
		if a.Topic == "secrets" && id.ClientID != "admin" {
			return errors.New("no")
		}
		return nil
	}
	f := newFixture(t, collections.Options{Heartbeat: -1, Authorize: authorize})
	c := f.dial(t, "alice")
	c.send(`{"action":"subscribe","collection":"secrets"}`)
	if got := c.next("the refusal"); got["code"] != string(pubsub.CodePermissionDenied) {
		t.Fatalf("subscribe to secrets → %v, want PERMISSION_DENIED", got)
	}
	c.subscribe("posts")
	admin := f.dial(t, "admin")
	admin.subscribe("secrets")
	f.publish(t, "secrets", collections.Create, map[string]any{"id": "s"})
	f.publish(t, "posts", collections.Create, map[string]any{"id": "p"})
	if got := c.next("the posts event"); got["type"] != "posts.create" {
		t.Errorf("alice got %v, want posts.create and never secrets", got)
	}
	if got := admin.next("the secrets event"); got["type"] != "secrets.create" {
		t.Errorf("admin got %v, want secrets.create", got)
	}
}

func TestRefusedTokens(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	for _, tok := range []string{"", "bad", "expired"} {
		c := f.dial(t, tok)
		got := c.next("the error frame")
		ce := c.expectClose("the close")
		if got["code"] != "UNAUTHENTICATED" || ce.Code != collections.CloseUnauthenticated || !strings.HasPrefix(ce.Reason, "UNAUTHENTICATED: ") {
			t.Errorf("token %q: frame %v, close %d %q; want UNAUTHENTICATED and 4001", tok, got, ce.Code, ce.Reason)
		}
	}
}

func TestTokenExpiryCloses(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	c.subscribe("posts")
	f.clock.Advance(time.Hour)
	got := c.next("the expiry error frame")
	ce := c.expectClose("the close at expiry")
	if got["code"] != "UNAUTHENTICATED" || ce.Code != collections.CloseTokenExpired || ce.Reason != "UNAUTHENTICATED: token expired" {
		t.Errorf("at expiry: frame %v, close %d %q; want UNAUTHENTICATED, 4003 \"UNAUTHENTICATED: token expired\"", got, ce.Code, ce.Reason)
	}
}

func TestServerClose(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	c := f.dial(t, "alice")
	c.subscribe("posts")
	closed := make(chan error, 1)
	go func() { closed <- f.srv.Close() }()
	if ce := c.expectClose("the close on shutdown"); ce.Code != websocket.StatusGoingAway {
		t.Errorf("close on shutdown = %d, want 1001", ce.Code)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close() = %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("timed out waiting for Close to return")
	}
	if f.hub.Stats().Connections != 1 { // the store's Room
		t.Errorf("hub connections after Close = %d, want 1 (only the publisher)", f.hub.Stats().Connections)
	}
}

func TestPublishRefuses(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1})
	ctx := ctxT(t)
	for name, call := range map[string]func() error{
		"bad collection": func() error {
			_, err := collections.Publish(ctx, f.room, "a b", collections.Create, map[string]any{})
			return err
		},
		"bad operation": func() error {
			_, err := collections.Publish(ctx, f.room, "posts", "upsert", map[string]any{})
			return err
		},
		"not an object": func() error {
			_, err := collections.Publish(ctx, f.room, "posts", collections.Create, []int{1})
			return err
		},
	} {
		var perr *pubsub.Error
		if err := call(); !errors.As(err, &perr) {
			t.Errorf("Publish(%s) = %v, want a *pubsub.Error", name, err)
		}
	}
}

func TestFrameRateCap(t *testing.T) {
	f := newFixture(t, collections.Options{Heartbeat: -1, MaxFrameRate: 5})
	c := f.dial(t, "alice")
	for range 5 {
		c.send("ping")
		if got := c.next("pong"); got["type"] != "pong" {
			t.Fatalf("ping → %v, want pong", got)
		}
	}
	c.send("ping") // the sixth within the same instant of the fake clock
	got := c.next("the rate error")
	ce := c.expectClose("the close for sending too fast")
	if got["code"] != string(pubsub.CodeRateLimitExceeded) || ce.Code != websocket.StatusPolicyViolation {
		t.Errorf("sixth frame → %v, close %d %q; want RATE_LIMIT_EXCEEDED and 1008", got, ce.Code, ce.Reason)
	}
	other := f.dial(t, "bob")
	other.send("ping")
	if got := other.next("pong on another connection"); got["type"] != "pong" {
		t.Errorf("another connection got %v, want pong", got)
	}
}
