package redis

import (
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/redis/redistest"
)

// wantCode checks that err is a *pubsub.Error with code whose message
// mentions each of words.
func wantCode(t *testing.T, what string, err error, code pubsub.Code, words ...string) {
	t.Helper()
	var perr *pubsub.Error
	if !errors.As(err, &perr) || perr.Code != code {
		t.Fatalf("%s = %v, want a %s error", what, err, code)
	}
	for _, w := range words {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("%s = %q, want it to mention %q", what, err, w)
		}
	}
}

func TestOpenWrongAddress(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := Open(ctxT(t), Options{URL: "redis://" + addr, DialTimeout: 2 * time.Second})
	if err == nil {
		c.Close()
	}
	wantCode(t, "Open(nothing listening)", err, pubsub.CodeNetworkError, addr)
	if perr := err.(*pubsub.Error); !perr.Retriable() {
		t.Errorf("Open(nothing listening) = %v, want a retriable error", err)
	}

	_, err = Open(ctxT(t), Options{URL: "http://" + addr})
	wantCode(t, "Open(http URL)", err, pubsub.CodeInvalidRequest)
}

func TestOpenAuthFailure(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "s3cret"})
	for name, url := range map[string]string{
		"no password":    "redis://" + srv.Addr(),
		"wrong password": "redis://:wrong@" + srv.Addr(),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Open(ctxT(t), Options{URL: url})
			if err == nil {
				c.Close()
			}
			wantCode(t, "Open("+name+")", err, pubsub.CodeUnauthenticated, srv.Addr(), "authentication failed")
		})
	}
	c := openOn(t, srv, Options{}) // the right password
	if err := c.Ping(ctxT(t)); err != nil {
		t.Errorf("Ping with the right password = %v", err)
	}
}

// A Redis at its maxmemory refuses the publish script as a whole (it is
// declared as writing): the error says so and nothing half-done stays.
func TestRedisFull(t *testing.T) {
	c, _ := open(t, redistest.Options{MaxMemory: "2mb"})
	s := c.Store(StoreOptions{})
	payload := json.RawMessage(`"` + strings.Repeat("x", 30_000) + `"`)
	var err error
	var stored int
	for i := range 500 {
		m := msg("chat", pubsub.ID(i+1), "")
		m.Payload = payload
		if _, _, err = s.Publish(ctxT(t), Publication{Room: "room", Message: m}); err != nil {
			break
		}
		stored++
	}
	if err == nil {
		t.Fatalf("500 publishes of 30 kB into a 2 MB Redis all succeeded")
	}
	wantCode(t, "Publish into a full Redis", err, pubsub.CodeInternal, "out of memory", "maxmemory")
	if !errors.Is(err, ErrRedisFull) {
		t.Errorf("Publish into a full Redis = %v, want errors.Is ErrRedisFull", err)
	}
	n, err := c.rc.Do(ctxT(t), c.rc.B().Zcard().Key(s.mustKeys(t, "room", "chat").set()).Build()).AsInt64()
	if err != nil || int(n) != stored {
		t.Errorf("history holds %d, %v; want the %d confirmed messages", n, err, stored)
	}
}

func (s *Store) mustKeys(t *testing.T, room, topic string) topicKeys {
	t.Helper()
	k, err := s.keys(room, topic)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNodeIDCollision(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	a, b := openOn(t, srv, Options{}), openOn(t, srv, Options{})
	la, err := a.AcquireNode(ctxT(t), 7, LeaseOptions{})
	if err != nil {
		t.Fatalf("AcquireNode(7) = %v", err)
	}
	_, err = b.AcquireNode(ctxT(t), 7, LeaseOptions{})
	wantCode(t, "AcquireNode(7) on a second hub", err, pubsub.CodeInternal, "node id 7", "taken by another hub", "pid")
	if !errors.Is(err, ErrNodeIDTaken) {
		t.Errorf("AcquireNode(7) on a second hub = %v, want errors.Is ErrNodeIDTaken", err)
	}
	// Any free id: the lowest but 7.
	lb, err := b.AcquireNode(ctxT(t), -1, LeaseOptions{})
	if err != nil || lb.Node() != 0 {
		t.Fatalf("AcquireNode(-1) = %v, %v; want node 0", lb, err)
	}
	defer lb.Close()
	// Released on Close: free at once.
	if err := la.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	lb7, err := b.AcquireNode(ctxT(t), 7, LeaseOptions{})
	if err != nil {
		t.Fatalf("AcquireNode(7) after the holder's Close = %v", err)
	}
	lb7.Close()
}

// A lease is renewed while its hub lives; one whose key another holder
// took reports the loss.
func TestLeaseRenewAndLoss(t *testing.T) {
	c, _ := open(t, redistest.Options{})
	lost := make(chan error, 1)
	l, err := c.AcquireNode(ctxT(t), 3, LeaseOptions{TTL: time.Second, OnLost: func(err error) { lost <- err }})
	if err != nil {
		t.Fatalf("AcquireNode(3) = %v", err)
	}
	defer l.Close()
	// Renewed: the key's remaining time goes up again (polled, bounded).
	ctx := ctxT(t)
	pttl := func() int64 {
		t.Helper()
		n, err := c.rc.Do(ctx, c.rc.B().Pttl().Key(l.key).Build()).AsInt64()
		if err != nil {
			t.Fatalf("PTTL = %v", err)
		}
		return n
	}
	for prev := pttl(); ; {
		if ctx.Err() != nil {
			t.Fatalf("no renewal of the lease seen within %v", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
		cur := pttl()
		if cur > prev {
			break
		}
		prev = cur
	}
	// A lapse with nobody else holding it: the next renewal takes it back.
	if err := c.rc.Do(ctx, c.rc.B().Del().Key(l.key).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	for pttl() <= 0 {
		if ctx.Err() != nil {
			t.Fatalf("the lapsed lease was not taken back within %v", waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Another holder takes the key (as after a lapse): the next renewal
	// reports the loss.
	if err := c.rc.Do(ctx, c.rc.B().Set().Key(l.key).Value("otherhost pid 9 (x)").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-lost:
		wantCode(t, "OnLost", err, pubsub.CodeInternal, "node id 3", "otherhost pid 9")
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for the lease to be reported lost", waitTimeout)
	}
	select {
	case <-l.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Done not closed after OnLost")
	}
	if l.Err() == nil {
		t.Error("Err() = nil after the loss")
	}
}
