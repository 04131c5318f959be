package collections_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/collections"
)

// seedFrames are the frames of the seed's documentation, as pasted.
var seedFrames = []string{
	`{
"action": "subscribe",
"collection": "posts",
"operations": ["create", "update", "delete"]
}`,
	`{
"action": "unsubscribe",
"collection": "posts"
}`,
	`{"action":"ping"}`,
	`ping`,
}

func TestParseFrame(t *testing.T) {
	all := []collections.Operation{collections.Create, collections.Update, collections.Delete}
	tests := []struct {
		name  string
		frame string
		want  collections.Frame
		err   bool
	}{
		{"seed subscribe", seedFrames[0], collections.Frame{Action: "subscribe", Collection: "posts", Operations: all}, false},
		{"seed unsubscribe", seedFrames[1], collections.Frame{Action: "unsubscribe", Collection: "posts"}, false},
		{"ping frame", seedFrames[2], collections.Frame{Action: "ping"}, false},
		{"bare ping", seedFrames[3], collections.Frame{Action: "ping"}, false},
		{"bare ping with newline", "ping\n", collections.Frame{Action: "ping"}, false},
		{"no operations means all", `{"action":"subscribe","collection":"posts"}`, collections.Frame{Action: "subscribe", Collection: "posts", Operations: all}, false},
		{"null operations means all", `{"action":"subscribe","collection":"posts","operations":null}`, collections.Frame{Action: "subscribe", Collection: "posts", Operations: all}, false},
		{"duplicates dropped", `{"action":"subscribe","collection":"posts","operations":["create","create"]}`, collections.Frame{Action: "subscribe", Collection: "posts", Operations: []collections.Operation{"create"}}, false},
		{"unknown members ignored", `{"action":"ping","id":7}`, collections.Frame{Action: "ping"}, false},
		{"empty operations", `{"action":"subscribe","collection":"posts","operations":[]}`, collections.Frame{Action: "subscribe", Collection: "posts"}, true},
		{"unknown action", `{"action":"jump","collection":"posts"}`, collections.Frame{Action: "jump", Collection: "posts"}, true},
		{"action not a string", `{"action":1}`, collections.Frame{}, true},
		{"collection too long", `{"action":"unsubscribe","collection":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}`, collections.Frame{Action: "unsubscribe", Collection: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}, true},
		{"collection with a dot", `{"action":"subscribe","collection":"posts.create"}`, collections.Frame{Action: "subscribe", Collection: "posts.create"}, true},
		{"not an object", `"ping"`, collections.Frame{}, true},
		{"empty", ``, collections.Frame{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := collections.ParseFrame([]byte(tt.frame))
			if (err != nil) != tt.err {
				t.Fatalf("ParseFrame(%q) error = %v, want error %v", tt.frame, err, tt.err)
			}
			if err != nil && !errors.Is(err, &pubsub.Error{Code: pubsub.CodeInvalidRequest}) {
				t.Errorf("ParseFrame(%q) = %v, want INVALID_REQUEST", tt.frame, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseFrame(%q) (-want +got):\n%s", tt.frame, diff)
			}
		})
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, s := range seedFrames {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"action":"subscribe","collection":"posts","operations":["create"]}`))
	f.Add([]byte(`{"action":"subscribe","collection":"po\u0000sts"}`))
	f.Add([]byte(`{"action":"unsubscribe"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := collections.ParseFrame(data)
		if err != nil {
			var perr *pubsub.Error
			if !errors.As(err, &perr) || perr.Code != pubsub.CodeInvalidRequest {
				t.Fatalf("ParseFrame(%q) = %v, want INVALID_REQUEST", data, err)
			}
			return
		}
		switch fr.Action {
		case collections.ActionPing:
		case collections.ActionSubscribe:
			if len(fr.Operations) == 0 || len(fr.Operations) > 3 {
				t.Fatalf("ParseFrame(%q) accepted operations %v", data, fr.Operations)
			}
			fallthrough
		case collections.ActionUnsubscribe:
			if err := collections.CheckCollection(fr.Collection); err != nil {
				t.Fatalf("ParseFrame(%q) accepted collection %q: %v", data, fr.Collection, err)
			}
			if err := pubsub.CheckTopic(fr.Collection); err != nil {
				t.Fatalf("ParseFrame(%q) accepted collection %q, which is no topic: %v", data, fr.Collection, err)
			}
		default:
			t.Fatalf("ParseFrame(%q) accepted action %q", data, fr.Action)
		}
	})
}
