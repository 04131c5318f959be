// Command chat is the smallest complete Plaza program: two Rooms on one
// in-process hub. Bob subscribes, Alice publishes, Bob reads the history.
//
//	go run ./examples/chat
package main

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

type chatLine struct {
	Text string `json:"text"`
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	hub, err := memory.New(memory.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()

	alice, err := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Leave(ctx)
	bob, err := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bob"})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Leave(ctx)

	got := make(chan struct{}, 3)
	_, err = pubsub.Subscribe(ctx, bob, "chat", func(m pubsub.Message, line chatLine) {
		fmt.Printf("bob hears %s: %s\n", m.From, line.Text)
		got <- struct{}{}
	})
	if err != nil {
		log.Fatal(err)
	}

	for _, text := range []string{"hello", "anyone here?", "bye"} {
		m, err := alice.Publish(ctx, "chat", chatLine{Text: text})
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("alice sent %q as message %s\n", text, m.ID)
		<-got
	}

	page, err := bob.GetHistory(ctx, "chat", pubsub.Limit(2))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("the last %d lines of history (more before them: %v):\n", len(page.Messages), page.HasMore)
	for _, m := range page.Messages {
		line, _ := pubsub.Decode[chatLine](m)
		fmt.Printf("  %s %s: %s\n", m.Timestamp.Format(time.TimeOnly), m.From, line.Text)
	}
}
