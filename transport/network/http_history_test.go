package network

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/coder/websocket"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func TestHTTPHistory(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	var ids []pubsub.ID
	for i, from := range []string{"alice", "bob", "alice", "bob", "alice"} {
		m := f.publish(t, "lobby", "chat", lobbyPub+":"+from, `{"message":`+string(rune('0'+i))+`}`)
		ids = append(ids, m.ID)
	}
	f.publish(t, "lobby", "chat", lobbyPub+":alice", `{"message":"private","to":["bob"]}`)
	tests := []struct {
		name    string
		query   string
		key     string
		want    []pubsub.ID
		hasMore bool
	}{
		{name: "newest page", query: "?limit=2", want: ids[3:5], hasMore: true},
		{name: "before", query: "?before=" + ids[3].String() + "&limit=2", want: ids[1:3], hasMore: true},
		{name: "after", query: "?after=" + ids[1].String(), want: ids[2:5]},
		{name: "from", query: "?from=bob", want: []pubsub.ID{ids[1], ids[3]}},
		{name: "from two", query: "?from=bob&from=alice&limit=50&after=" + ids[2].String(), want: ids[3:5]},
		{name: "one", query: "?limit=1", want: ids[4:5], hasMore: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := tt.key
			if key == "" {
				key = lobbySub + ":carol" // not a recipient of the private message
			}
			r := f.do(t, http.MethodGet, "/lobby/pubsub/chat/history"+tt.query, key, "", "")
			var page pubsub.HistoryPage
			if r.status != 200 || json.Unmarshal(r.env.Data, &page) != nil {
				t.Fatalf("GET history%s = %d %s", tt.query, r.status, r.raw)
			}
			var got []pubsub.ID
			for _, m := range page.Messages {
				got = append(got, m.ID)
			}
			if !equalIDs(got, tt.want) || page.HasMore != tt.hasMore {
				t.Errorf("GET history%s = %v hasMore %v, want %v hasMore %v", tt.query, got, page.HasMore, tt.want, tt.hasMore)
			}
		})
	}
	t.Run("recipient sees the private message", func(t *testing.T) {
		r := f.do(t, http.MethodGet, "/lobby/pubsub/chat/history?limit=1", lobbySub+":bob", "", "")
		var page pubsub.HistoryPage
		json.Unmarshal(r.env.Data, &page)
		if len(page.Messages) != 1 || string(page.Messages[0].Payload) != `"private"` {
			t.Errorf("bob's newest message = %s, want the private one", r.raw)
		}
	})
}

func equalIDs(a, b []pubsub.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestHTTPHistoryRefused(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	tests := []struct {
		name   string
		path   string
		key    string
		status int
		code   pubsub.Code
	}{
		{"no key", "/lobby/pubsub/chat/history", "", 401, pubsub.CodeUnauthenticated},
		{"before and after", "/lobby/pubsub/chat/history?before=5&after=3", lobbySub, 400, pubsub.CodeInvalidHistoryOpts},
		{"bad before", "/lobby/pubsub/chat/history?before=x", lobbySub, 400, pubsub.CodeInvalidHistoryOpts},
		{"zero after", "/lobby/pubsub/chat/history?after=0", lobbySub, 400, pubsub.CodeInvalidHistoryOpts},
		{"limit too big", "/lobby/pubsub/chat/history?limit=51", lobbySub, 400, pubsub.CodeInvalidLimit},
		{"limit zero", "/lobby/pubsub/chat/history?limit=0", lobbySub, 400, pubsub.CodeInvalidLimit},
		{"limit not a number", "/lobby/pubsub/chat/history?limit=ten", lobbySub, 400, pubsub.CodeInvalidLimit},
		{"pattern", "/lobby/pubsub/user:*/history", lobbySub, 400, pubsub.CodeInvalidTopicName},
		{"bad from", "/lobby/pubsub/chat/history?from=%00", lobbySub, 400, pubsub.CodeInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(t, http.MethodGet, tt.path, tt.key, "", "")
			if r.status != tt.status || r.env.Error.Code != tt.code {
				t.Errorf("GET %s = %d %s, want %d %s", tt.path, r.status, r.raw, tt.status, tt.code)
			}
		})
	}
}

func FuzzParseHistoryQuery(f *testing.F) {
	for _, q := range []string{
		"", "limit=50", "before=1904829283928846336&limit=2", "after=1&from=alice&from=bob",
		"before=1&after=2", "limit=-1", "limit=99999999999999999999", "before=+1", "from=%00", "after=9223372036854775808",
	} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		req, perr := parseHistoryQuery("chat", q)
		if perr != nil {
			if httpStatus(perr.Code) != http.StatusBadRequest {
				t.Fatalf("parseHistoryQuery(%q) = %v, want a 400 code", raw, perr)
			}
			return
		}
		if err := pubsub.CheckHistory(&req); err != nil {
			t.Fatalf("parseHistoryQuery(%q) accepted %+v, which CheckHistory refuses: %v", raw, req, err)
		}
	})
}

// TestHistoryOptionsAgree sends the same history options as a WebSocket
// frame and as an HTTP query: both routes follow the rule of Room.GetHistory
// (absent means the default, a given zero is an error) and answer alike.
func TestHistoryOptionsAgree(t *testing.T) {
	t.Parallel()
	f := newKeyFixture(t, memory.Options{}, Options{})
	ctx := ctxT(t)
	hc, err := f.hub.Connect(ctx, pubsub.ConnectRequest{Room: "lobby", ClientID: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	var ids []pubsub.ID
	for i := range 30 {
		m, err := hc.Publish(ctx, pubsub.PublishRequest{Topic: "chat", Payload: []byte(strconv.Itoa(i))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	mid := ids[10].String()
	ws := dialRaw(t, f.wsURL("lobby"), &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + lobbySub}}})
	ws.expect(typeWelcome, "")

	tests := []struct {
		name   string
		frame  string // members of the history frame
		query  string
		code   pubsub.Code // "" for success
		length int         // of the page, on success
	}{
		{"nothing given", ``, ``, "", pubsub.DefaultHistoryLimit},
		{"null and empty are not given", `,"limit":null,"before":null`, `limit=&before=`, "", pubsub.DefaultHistoryLimit},
		{"limit 1", `,"limit":1`, `limit=1`, "", 1},
		{"limit 50", `,"limit":50`, `limit=50`, "", 30},
		{"limit 0", `,"limit":0`, `limit=0`, pubsub.CodeInvalidLimit, 0},
		{"limit -1", `,"limit":-1`, `limit=-1`, pubsub.CodeInvalidLimit, 0},
		{"limit 51", `,"limit":51`, `limit=51`, pubsub.CodeInvalidLimit, 0},
		{"limit fractional", `,"limit":2.5`, `limit=2.5`, pubsub.CodeInvalidLimit, 0},
		{"limit not a number", `,"limit":"ten"`, `limit=ten`, pubsub.CodeInvalidLimit, 0},
		{"limit beyond int64", `,"limit":99999999999999999999`, `limit=99999999999999999999`, pubsub.CodeInvalidLimit, 0},
		{"before", `,"before":"` + mid + `"`, `before=` + mid, "", 10},
		{"after", `,"after":"` + mid + `"`, `after=` + mid, "", 19},
		{"before 0", `,"before":"0"`, `before=0`, pubsub.CodeInvalidHistoryOpts, 0},
		{"after 0", `,"after":"0"`, `after=0`, pubsub.CodeInvalidHistoryOpts, 0},
		{"after 0 padded", `,"after":"000"`, `after=000`, pubsub.CodeInvalidHistoryOpts, 0},
		{"before negative", `,"before":"-5"`, `before=-5`, pubsub.CodeInvalidHistoryOpts, 0},
		{"before not digits", `,"before":"x"`, `before=x`, pubsub.CodeInvalidHistoryOpts, 0},
		{"before of 20 digits", `,"before":"12345678901234567890"`, `before=12345678901234567890`, pubsub.CodeInvalidHistoryOpts, 0},
		{"before and after", `,"before":"` + mid + `","after":"5"`, `before=` + mid + `&after=5`, pubsub.CodeInvalidHistoryOpts, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ws := &rawConn{tb: t, ws: ws.ws}
			id := strconv.Itoa(i + 1)
			ws.send(`{"type":"history","id":"` + id + `","topic":"chat"` + tt.frame + `}`)
			fr := ws.next()
			var wsCode pubsub.Code
			if fr.Error != nil {
				wsCode = fr.Error.Code
			}
			r := f.do(t, http.MethodGet, "/lobby/pubsub/chat/history?"+tt.query, lobbySub, "", "")
			var httpCode pubsub.Code
			var page pubsub.HistoryPage
			if r.env.Error != nil {
				httpCode = r.env.Error.Code
			} else if err := json.Unmarshal(r.env.Data, &page); err != nil {
				t.Fatalf("GET history?%s answered %s: %v", tt.query, r.raw, err)
			}
			if fr.ID != id || wsCode != tt.code || httpCode != tt.code {
				t.Fatalf("history %s: WebSocket answered %q (id %q), HTTP %q (%d); want %q from both", tt.name, wsCode, fr.ID, httpCode, r.status, tt.code)
			}
			if tt.code != "" {
				if r.status != http.StatusBadRequest {
					t.Errorf("GET history?%s = %d, want 400", tt.query, r.status)
				}
				return
			}
			if len(fr.Messages) != tt.length || len(page.Messages) != tt.length {
				t.Errorf("history %s: pages of %d (WebSocket) and %d (HTTP) messages, want %d", tt.name, len(fr.Messages), len(page.Messages), tt.length)
			}
		})
	}
}
