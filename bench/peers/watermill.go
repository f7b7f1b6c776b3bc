package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"

	"github.com/storeloop/storeloop/internal/bench"
)

// watermillLoop is the work on Watermill's router: a watermill-nats
// JetStream subscriber (w.InFlight queue subscriptions of one durable push
// consumer, each holding one message until it is acknowledged, with
// Watermill's default synchronous ack), a handler that evaluates the rule
// (bench.ShippedEffect) and returns the write, which the router publishes
// with a synchronous JetStream publish before it acks the event.
var watermillLoop = bench.Loop{Name: "watermill router", Start: startWatermill}

func startWatermill(ctx context.Context, w bench.Work) (func() error, error) {
	logger := watermill.NopLogger{}
	js := wmnats.JetStreamConfig{
		DurablePrefix: w.Consumer,
		SubscribeOptions: []nats.SubOpt{
			nats.BindStream(w.Stream), nats.DeliverAll(), nats.AckExplicit(), nats.ManualAck(),
		},
	}
	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              w.URL,
		QueueGroupPrefix: w.Consumer,
		SubscribersCount: w.InFlight,
		JetStream:        js,
	}, logger)
	if err != nil {
		return nil, err
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: w.URL, JetStream: wmnats.JetStreamConfig{}}, logger)
	if err != nil {
		return nil, errors.Join(err, sub.Close())
	}
	router, err := message.NewRouter(message.RouterConfig{}, logger)
	if err != nil {
		return nil, errors.Join(err, sub.Close(), pub.Close())
	}
	router.AddHandler("loyalty", w.In, sub, w.Out, pub, func(msg *message.Message) ([]*message.Message, error) {
		write, ok, err := bench.ShippedEffect(msg.Payload)
		if err != nil || !ok {
			return nil, err
		}
		return []*message.Message{message.NewMessage(watermill.NewUUID(), write)}, nil
	})
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- router.Run(rctx) }()
	select {
	case <-router.Running():
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("watermill router: %w", err)
	}
	return func() error {
		err := router.Close()
		cancel()
		return errors.Join(err, <-done)
	}, nil
}
