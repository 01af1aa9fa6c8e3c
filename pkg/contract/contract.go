// Package contract holds the rules that the order and payment services and the
// events between them share: what an id, a currency and an amount look like,
// and the reason codes one service sends and the other stores. It is defined
// once, here, and nowhere else: pkg/events validates the wire with it, and the
// domain packages validate their input with it, so an order the API accepts is
// always an event the consumer accepts.
//
// It imports nothing but the standard library, on purpose: a domain package
// may import it without depending on Kafka, Watermill or the event encoding.
package contract

import (
	"fmt"
	"regexp"
)

// MaxAmountCents bounds every amount: an order's, a charge's and a refund's, in
// cents (one million in the currency's major unit). A refund never exceeds its
// charge and a charge is one order's amount, so no amount on the wire is larger,
// and no sum a service keeps per order can overflow.
const MaxAmountCents = 1_000_000_00

// ValidAmount reports whether a is an amount of 1..MaxAmountCents cents.
func ValidAmount(a int64) bool { return a > 0 && a <= MaxAmountCents }

var (
	idRe       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$`)
	currencyRe = regexp.MustCompile(`^[A-Z]{3}$`)
)

// ValidID reports whether s can be used as a customer or order id: 1-64 characters
// of letters, digits and ".", "_", ":", "-", starting with a letter or digit.
func ValidID(s string) bool { return idRe.MatchString(s) }

// ValidCurrency reports whether c is an ISO 4217-shaped code (three capital letters).
func ValidCurrency(c string) bool { return currencyRe.MatchString(c) }

// The rules above, worded for a person (an API's field errors).
const (
	IDRule       = "must be 1-64 letters, digits or . _ : - (starting with a letter or digit)"
	CurrencyRule = "must be an ISO 4217 code: three capital letters, e.g. EUR"
)

// AmountRule is ValidAmount's rule, worded for a person.
var AmountRule = fmt.Sprintf("must be between 1 and %d", MaxAmountCents)

// Reasons the payment service refuses a charge; PaymentFailed.Reason holds one,
// and the order shows it as "payment_failed: <reason>".
const (
	ReasonInsufficientFunds = "insufficient_funds"
	ReasonUnknownCustomer   = "unknown_customer"
	ReasonCurrencyMismatch  = "currency_mismatch"
)

// Reasons the payment service cannot refund a charge; PaymentRefundFailed.Reason
// holds one, and the order shows it as its refund_failure.
const (
	// ReasonAccountNotFound: the account that was charged no longer exists.
	ReasonAccountNotFound = "account_not_found"
)

// MaxReasonLength bounds a reason on the wire (PaymentFailed, OrderCancelled,
// PaymentRefundFailed), in bytes.
const MaxReasonLength = 200

// ValidReason reports whether r is a reason of 1..MaxReasonLength bytes.
func ValidReason(r string) bool { return r != "" && len(r) <= MaxReasonLength }
