package network

import (
	"context"
	"math"
	"net/http"
	"net/url"

	"github.com/plazahq/plaza/pubsub"
)

// parseHistoryQuery reads the query parameters of GET …/history: before and
// after (message ids, at most one of them), limit (1 to 50, default 25) and
// from (a sender; repeat it for several). Bad values fail with the codes of
// the Go API and of history frames (see checkLimit): INVALID_HISTORY_OPTS for
// the anchors, INVALID_LIMIT for the limit.
func parseHistoryQuery(topicName string, q url.Values) (pubsub.HistoryRequest, *pubsub.Error) {
	req := pubsub.HistoryRequest{Topic: topicName, From: q["from"]}
	for _, a := range []struct {
		name string
		dst  *pubsub.ID
	}{{"before", &req.Before}, {"after", &req.After}} {
		v := q.Get(a.name)
		if v == "" {
			continue
		}
		id, perr := anchorID(a.name, v)
		if perr != nil {
			return req, perr
		}
		*a.dst = id
	}
	n, perr := queryInt(q, "limit", 0, math.MinInt64, math.MaxInt64, pubsub.CodeInvalidLimit)
	if perr != nil {
		return req, perr
	}
	if q.Get("limit") != "" {
		if perr := checkLimit(n); perr != nil {
			return req, perr
		}
	}
	req.Limit = int(n)
	if err := pubsub.CheckHistory(&req); err != nil {
		return req, asPubsubError(err)
	}
	return req, nil
}

// serveHistory answers GET /{room}/pubsub/{topic}/history with one page of
// the topic's history, as the caller may see it.
func (s *Server) serveHistory(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	id, perr := s.httpIdentity(r)
	if perr != nil {
		fail(w, perr)
		return
	}
	req, perr := parseHistoryQuery(r.PathValue("topic"), r.URL.Query())
	if perr != nil {
		fail(w, perr)
		return
	}
	ctx := r.Context()
	if err := s.authorize(ctx, id, pubsub.Access{Action: pubsub.ActionHistory, Room: room, Topic: req.Topic, ClientID: id.ClientID}); err != nil {
		fail(w, err)
		return
	}
	s.answerThroughHub(ctx, w, room, id, func(hc pubsub.Conn, b []byte) ([]byte, error) {
		page, err := hc.History(ctx, req)
		return appendPage(b, &page), err
	})
}

// answerThroughHub opens a hub connection for id in room, runs call on it,
// and answers with {"data": what call appended}, or with call's error.
func (s *Server) answerThroughHub(ctx context.Context, w http.ResponseWriter, room string, id Identity, call func(hc pubsub.Conn, b []byte) ([]byte, error)) {
	hc, err := s.t.Connect(ctx, pubsub.ConnectRequest{Room: room, ClientID: id.ClientID})
	if err != nil {
		fail(w, err)
		return
	}
	defer hc.Close()
	bp := getBuf()
	defer putBuf(bp)
	b, err := call(hc, (*bp)[:0])
	if err != nil {
		fail(w, err)
		return
	}
	*bp = b
	writeData(w, b)
}

// appendPage appends a history page as {"messages": [...], "hasMore": bool}.
func appendPage(b []byte, p *pubsub.HistoryPage) []byte {
	b = append(b, `{"messages":[`...)
	for i := range p.Messages {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendMessage(b, &p.Messages[i])
	}
	b = append(b, `],"hasMore":`...)
	if p.HasMore {
		b = append(b, "true"...)
	} else {
		b = append(b, "false"...)
	}
	return append(b, '}')
}
