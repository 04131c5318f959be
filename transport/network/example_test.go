package network_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
	"github.com/plazahq/plaza/transport/network"
)

// Two Rooms in "another process" join a hub served over WebSocket.
func ExampleNewClient() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The hub's process: a memory hub behind a Server that knows two tokens.
	// A real one would verify signed tokens.
	hub, err := memory.New(memory.Options{})
	if err != nil {
		log.Fatal(err)
	}
	srv := network.NewServer(hub, network.Options{
		Authenticate: func(_ context.Context, _ *http.Request, token string) (network.Identity, error) {
			switch token {
			case "alice-secret":
				return network.Identity{ClientID: "alice"}, nil
			case "bob-secret":
				return network.Identity{ClientID: "bob"}, nil
			}
			return network.Identity{}, errors.New("unknown token")
		},
	})
	ts := httptest.NewServer(srv) // listens on 127.0.0.1

	// A client's process: Rooms on a Client for the server's URL.
	t, err := network.NewClient(ts.URL, nil)
	if err != nil {
		log.Fatal(err)
	}
	alice, err := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: "alice-secret"})
	if err != nil {
		log.Fatal(err)
	}
	bob, err := pubsub.Join(ctx, t, "lobby", &pubsub.JoinOptions{Token: "bob-secret", GapFill: true})
	if err != nil {
		log.Fatal(err)
	}
	got := make(chan pubsub.Message, 1)
	if _, err := bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m }); err != nil {
		log.Fatal(err)
	}
	if _, err := alice.Publish(ctx, "chat", map[string]string{"text": "hello over the network"}); err != nil {
		log.Fatal(err)
	}
	select {
	case m := <-got:
		fmt.Printf("%s to %s: %s\n", m.From, bob.ClientID(), m.Payload)
	case <-ctx.Done():
		fmt.Println("nothing received:", ctx.Err())
	}

	alice.Leave(ctx)
	bob.Leave(ctx)
	srv.Shutdown(ctx)
	ts.Close()
	hub.Close()
	// Output: alice to bob: {"text":"hello over the network"}
}
