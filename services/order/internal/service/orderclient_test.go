package service

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/onceflow/onceflow/examples/orderclient"
	"github.com/onceflow/onceflow/pkg/httpserver"
)

// TestGeneratedClient places, reads and cancels an order through
// examples/orderclient, the client oapi-codegen generates from /openapi.json,
// against the order service on a real database and Kafka: the document is
// usable by code nobody here wrote, and the answers decode into its types,
// problems included. No payment service runs, so the order stays PENDING
// until it is cancelled.
func TestGeneratedClient(t *testing.T) {
	addr := startOrderService(t, 5*time.Second, httpserver.Config{})
	client, err := orderclient.NewClientWithResponses("http://" + addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	key := orderclient.IdempotencyKey("generated-client-place")
	placed, err := client.PlaceOrderWithResponse(ctx, &orderclient.PlaceOrderParams{IdempotencyKey: &key},
		orderclient.PlaceOrderJSONRequestBody{CustomerId: "c-generated", AmountCents: 1250, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	if placed.JSON201 == nil {
		t.Fatalf("place: %d %s, want 201 with the order", placed.StatusCode(), placed.Body)
	}
	order := placed.JSON201
	if order.Status != orderclient.PENDING || order.CustomerId != "c-generated" || order.AmountCents != 1250 {
		t.Fatalf("placed %+v, want a PENDING order of c-generated for 1250", order)
	}
	if loc := placed.HTTPResponse.Header.Get("Location"); loc != "/orders/"+order.Id {
		t.Fatalf("Location = %q, want /orders/%s", loc, order.Id)
	}

	read, err := client.GetOrderWithResponse(ctx, order.Id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if read.JSON200 == nil || read.JSON200.Id != order.Id || read.JSON200.Status != orderclient.PENDING {
		t.Fatalf("read: %d %s, want the PENDING order %s", read.StatusCode(), read.Body, order.Id)
	}

	cancelled, err := client.CancelOrderWithResponse(ctx, order.Id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled.JSON200 == nil || cancelled.JSON200.Status != orderclient.CANCELLED ||
		cancelled.JSON200.CancelReason == nil || *cancelled.JSON200.CancelReason != "cancelled_by_customer" {
		t.Fatalf("cancel: %d %s, want the order CANCELLED by the customer", cancelled.StatusCode(), cancelled.Body)
	}

	missing, err := client.GetOrderWithResponse(ctx, "no-such-order", nil)
	if err != nil {
		t.Fatal(err)
	}
	if p := missing.ApplicationproblemJSON404; p == nil || p.Status != 404 || !strings.HasSuffix(p.Type, "#not-found") {
		t.Fatalf("unknown order: %d %s, want a not-found problem", missing.StatusCode(), missing.Body)
	}
}
