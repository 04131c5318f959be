package pubsub_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/plazahq/plaza/pubsub"
	"github.com/plazahq/plaza/transport/memory"
)

func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hub, _ := memory.New(memory.Options{})
	defer hub.Close()

	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	defer alice.Leave(ctx)
	bob, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bob"})
	defer bob.Leave(ctx)

	got := make(chan pubsub.Message, 1)
	bob.Subscribe(ctx, "chat", func(m pubsub.Message) { got <- m })

	sent, _ := alice.Publish(ctx, "chat", map[string]string{"text": "hello"})
	select {
	case m := <-got:
		fmt.Println(m.From, string(m.Payload), m.ID == sent.ID)
	case <-ctx.Done():
		fmt.Println("nothing received:", ctx.Err())
	}

	page, _ := bob.GetHistory(ctx, "chat")
	fmt.Println(len(page.Messages), page.HasMore)
	// Output:
	// alice {"text":"hello"} true
	// 1 false
}

func ExampleRoom_Publish() {
	ctx := context.Background()
	hub, _ := memory.New(memory.Options{})
	defer hub.Close()
	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	defer alice.Leave(ctx)

	// Only bob's handlers fire, and only alice and bob see it in history.
	m, err := alice.Publish(ctx, "chat", map[string]string{"text": "private hi"},
		pubsub.To("bob"),
		pubsub.Metadata(map[string]string{"priority": "high"}))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(m.From, m.To, m.Metadata["priority"], m.Persisted)

	// Delivered live, never stored.
	m, _ = alice.Publish(ctx, "cursor", map[string]int{"x": 120, "y": 340}, pubsub.Persist(false))
	fmt.Println(m.Persisted)

	_, err = alice.Publish(ctx, "chat room", "hi")
	fmt.Println(errors.Is(err, pubsub.ErrInvalidTopicName))
	// Output:
	// alice [bob] high true
	// false
	// true
}

func ExampleRoom_GetHistory() {
	ctx := context.Background()
	hub, _ := memory.New(memory.Options{})
	defer hub.Close()
	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	defer alice.Leave(ctx)
	for i := 1; i <= 7; i++ {
		alice.Publish(ctx, "chat", i)
	}

	// The newest page, then scroll up until there is nothing older.
	page, _ := alice.GetHistory(ctx, "chat", pubsub.Limit(3))
	for {
		for _, m := range page.Messages {
			fmt.Print(string(m.Payload), " ")
		}
		fmt.Println("| more:", page.HasMore)
		if !page.HasMore {
			break
		}
		page, _ = alice.GetHistory(ctx, "chat", pubsub.Limit(3), pubsub.Before(page.Messages[0].ID))
	}
	// Output:
	// 5 6 7 | more: true
	// 2 3 4 | more: true
	// 1 | more: false
}

func ExampleRoom_Subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hub, _ := memory.New(memory.Options{})
	defer hub.Close()
	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	defer alice.Leave(ctx)
	bob, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bob"})
	defer bob.Leave(ctx)

	// A pattern: every topic that starts with "user:".
	done := make(chan struct{})
	sub, _ := bob.Subscribe(ctx, "user:*", func(m pubsub.Message) {
		fmt.Println(m.Topic, string(m.Payload))
		if m.Topic == "user:123" {
			close(done)
		}
	})
	alice.Publish(ctx, "users", "not under user:")
	alice.Publish(ctx, "user:123:events", map[string]string{"type": "login"})
	alice.Publish(ctx, "user:123", "online")
	select {
	case <-done:
	case <-ctx.Done():
		fmt.Println("not all received:", ctx.Err())
	}
	sub.Unsubscribe(ctx)
	// Output:
	// user:123:events {"type":"login"}
	// user:123 "online"
}

func ExampleSubscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hub, _ := memory.New(memory.Options{})
	defer hub.Close()
	alice, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "alice"})
	defer alice.Leave(ctx)
	bob, _ := pubsub.Join(ctx, hub, "lobby", &pubsub.JoinOptions{ClientID: "bob"})
	defer bob.Leave(ctx)

	type chatPayload struct {
		Text string `json:"text"`
	}
	done := make(chan struct{})
	pubsub.Subscribe(ctx, bob, "chat", func(m pubsub.Message, p chatPayload) {
		fmt.Printf("%s: %s\n", m.From, p.Text)
		close(done)
	})
	alice.Publish(ctx, "chat", chatPayload{Text: "typed hello"})
	select {
	case <-done:
	case <-ctx.Done():
		fmt.Println("nothing received:", ctx.Err())
	}
	// Output:
	// alice: typed hello
}
