package harness

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/onceflow/onceflow/deploy/dbusers"
	"github.com/onceflow/onceflow/internal/testenv"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// Topics are the Kafka topics of one stack.
type Topics struct {
	Orders, Payments, OrderPoison, PaymentPoison string
}

// StackConfig describes a stack.
type StackConfig struct {
	// Name makes database, topic and consumer group names unique; letters, digits, '_'.
	Name string
	// OrderBin and PaymentBin are the service executables (see Build).
	OrderBin, PaymentBin string
	// OrderReplicas and PaymentReplicas: how many processes of each (default 1).
	OrderReplicas, PaymentReplicas int
	// OrderEnv and PaymentEnv are extra environment variables for every replica.
	OrderEnv, PaymentEnv []string
	// LogDir receives one log file per process.
	LogDir string
	// Via, if set, maps a server name (OrderDB, PaymentDB, Kafka) to the address
	// the services use instead of the server's own, e.g. a proxy (Proxies.Addr).
	Via map[string]string
}

// Stack is the whole system on an Infra: fresh databases, topics and consumer
// groups, and the service processes.
type Stack struct {
	Infra  *Infra
	Config StackConfig
	Topics Topics
	Kafka  kafka.Config
	// OrderDB and PaymentDB are pools as the test superuser, for the checks.
	OrderDB   *sql.DB
	PaymentDB *sql.DB
	// orderUsers and paymentUsers: the services migrate as the migration user
	// and run as the service user of their database, with the table grants the
	// migration user gives it at start.
	orderUsers, paymentUsers dbusers.Users
	Orders                   []*Service
	Payments                 []*Service
	client                   *http.Client

	craftMu sync.Mutex
	crafted map[string]bool
}

// Craft records orders a scenario made on purpose outside the load so that
// their events cannot be published; Check expects them parked (I9).
func (s *Stack) Craft(orderIDs ...string) {
	s.craftMu.Lock()
	defer s.craftMu.Unlock()
	if s.crafted == nil {
		s.crafted = map[string]bool{}
	}
	for _, id := range orderIDs {
		s.crafted[id] = true
	}
}

func (s *Stack) craftedOrders() map[string]bool {
	s.craftMu.Lock()
	defer s.craftMu.Unlock()
	out := map[string]bool{}
	for id := range s.crafted {
		out[id] = true
	}
	return out
}

// NewStack creates the databases and topics and prepares (does not start) the
// service processes.
func NewStack(infra *Infra, cfg StackConfig) (*Stack, error) {
	if cfg.OrderReplicas == 0 {
		cfg.OrderReplicas = 1
	}
	if cfg.PaymentReplicas == 0 {
		cfg.PaymentReplicas = 1
	}
	if err := os.MkdirAll(cfg.LogDir, 0o755); err != nil {
		return nil, err
	}
	s := &Stack{
		Infra:  infra,
		Config: cfg,
		Kafka:  kafka.Config{Brokers: infra.KafkaBrokers(), ClientID: "harness"}.Defaults(),
		Topics: Topics{
			Orders: cfg.Name + ".orders", Payments: cfg.Name + ".payments",
			OrderPoison: cfg.Name + ".order.poison", PaymentPoison: cfg.Name + ".payment.poison",
		},
		client: &http.Client{Timeout: 5 * time.Second},
	}
	var err error
	if s.OrderDB, s.orderUsers, err = createDB(infra.OrderDBAddr(), "e2e_"+cfg.Name+"_orders"); err != nil {
		return nil, err
	}
	if s.PaymentDB, s.paymentUsers, err = createDB(infra.PaymentDBAddr(), "e2e_"+cfg.Name+"_payments"); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.Kafka.EnsureTopics(ctx, []kafka.TopicSpec{
		{Name: s.Topics.Orders, Partitions: events.DefaultPartitions},
		{Name: s.Topics.Payments, Partitions: events.DefaultPartitions},
		kafka.PoisonTopicSpec(s.Topics.OrderPoison),
		kafka.PoisonTopicSpec(s.Topics.PaymentPoison),
	}); err != nil {
		return nil, fmt.Errorf("creating topics: %w", err)
	}
	for i := range cfg.OrderReplicas {
		if err := s.addService("order", i+1); err != nil {
			return nil, err
		}
	}
	for i := range cfg.PaymentReplicas {
		if err := s.addService("payment", i+1); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// createDB creates database name (afresh) with its migration and service
// users (testenv.CreateUsers) and returns a pool on it as the test superuser.
func createDB(addr, name string) (*sql.DB, dbusers.Users, error) {
	var users dbusers.Users
	admin, err := sql.Open("mysql", testenv.DSN(addr, ""))
	if err != nil {
		return nil, users, err
	}
	defer admin.Close()
	if _, err := admin.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		return nil, users, fmt.Errorf("database server %s: %w", addr, err)
	}
	if _, err := admin.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		return nil, users, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if users, err = testenv.CreateUsers(ctx, admin, name); err != nil {
		return nil, users, err
	}
	db, err := sql.Open("mysql", testenv.DSN(addr, name))
	if err != nil {
		return nil, users, err
	}
	db.SetMaxOpenConns(20)
	return db, users, nil
}

func (s *Stack) addService(kind string, n int) error {
	addr, err := FreeAddr()
	if err != nil {
		return err
	}
	name := kind + "-" + strconv.Itoa(n)
	env := append(os.Environ(), "LOG_LEVEL=info")
	via := func(server, addr string) string {
		if v := s.Config.Via[server]; v != "" {
			return v
		}
		return addr
	}
	brokers := via(Kafka, strings.Join(s.Infra.KafkaBrokers(), ","))
	// appDSN is a service's own DSN. On a Galera cluster a node applies the
	// other nodes' commits just after they commit: its sessions wait for that
	// before each read (wsrep_sync_wait=1, which the driver sets per session),
	// so that a read on a new writer after a failover sees what the old
	// writer committed (ADR 0060).
	appDSN := func(addr, schema, user, password string) string {
		dsn := testenv.UserDSN(addr, schema, user, password)
		if s.Infra.DBNodes == 3 {
			dsn += "&wsrep_sync_wait=1"
		}
		return dsn
	}
	var svc *Service
	switch kind {
	case "order":
		env = append(env,
			"ORDER_HTTP_ADDR="+addr,
			"ORDER_DB_DSN="+appDSN(via(OrderDB, s.Infra.OrderDBAddr()), s.orderUsers.Schema, s.orderUsers.App, s.orderUsers.AppPassword),
			"ORDER_DB_MIGRATE_DSN="+testenv.UserDSN(via(OrderDB, s.Infra.OrderDBAddr()), s.orderUsers.Schema, s.orderUsers.Migrate, s.orderUsers.MigratePassword),
			"ORDER_KAFKA_BROKERS="+brokers,
			"ORDER_KAFKA_CLIENT_ID="+name,
			"ORDER_KAFKA_INSTANCE_ID="+name,
			"ORDER_TOPIC_ORDERS="+s.Topics.Orders,
			"ORDER_TOPIC_PAYMENTS="+s.Topics.Payments,
			"ORDER_POISON_TOPIC="+s.Topics.OrderPoison,
			"ORDER_TOPIC_PAYMENT_POISON="+s.Topics.PaymentPoison,
			"ORDER_CONSUMER_GROUP="+s.Config.Name+"-order",
		)
		for _, e := range auditEnv {
			env = append(env, "ORDER_"+e)
		}
		svc = &Service{Name: name, Bin: s.Config.OrderBin, Env: append(env, s.Config.OrderEnv...), HTTPAddr: addr}
		s.Orders = append(s.Orders, svc)
	case "payment":
		env = append(env,
			"PAYMENT_HTTP_ADDR="+addr,
			"PAYMENT_DB_DSN="+appDSN(via(PaymentDB, s.Infra.PaymentDBAddr()), s.paymentUsers.Schema, s.paymentUsers.App, s.paymentUsers.AppPassword),
			"PAYMENT_DB_MIGRATE_DSN="+testenv.UserDSN(via(PaymentDB, s.Infra.PaymentDBAddr()), s.paymentUsers.Schema, s.paymentUsers.Migrate, s.paymentUsers.MigratePassword),
			"PAYMENT_KAFKA_BROKERS="+brokers,
			"PAYMENT_KAFKA_CLIENT_ID="+name,
			"PAYMENT_KAFKA_INSTANCE_ID="+name,
			"PAYMENT_TOPIC_ORDERS="+s.Topics.Orders,
			"PAYMENT_TOPIC_PAYMENTS="+s.Topics.Payments,
			"PAYMENT_POISON_TOPIC="+s.Topics.PaymentPoison,
			"PAYMENT_CONSUMER_GROUP="+s.Config.Name+"-payment",
		)
		for _, e := range auditEnv {
			env = append(env, "PAYMENT_"+e)
		}
		svc = &Service{Name: name, Bin: s.Config.PaymentBin, Env: append(env, s.Config.PaymentEnv...), HTTPAddr: addr}
		s.Payments = append(s.Payments, svc)
	}
	svc.Log = filepath.Join(s.Config.LogDir, s.Config.Name+"-"+name+".log")
	return nil
}

// Start starts every service process (payment first, so that accounts can be
// seeded before orders arrive).
func (s *Stack) Start() error {
	if len(s.Payments) > 0 {
		// The order service's console and diagnosis read the first payment replica.
		for _, o := range s.Orders {
			o.Env = append(o.Env, "ORDER_CONSOLE_PAYMENT_URL=http://"+s.Payments[0].HTTPAddr)
		}
	}
	for _, svc := range append(append([]*Service{}, s.Payments...), s.Orders...) {
		if err := svc.Start(); err != nil {
			return err
		}
	}
	return nil
}

// Close kills every service process, closes the database pools and deletes the
// stack's topics (a broker with thousands of partitions takes many seconds to
// restart after a kill -9, which would distort later scenarios).
func (s *Stack) Close() {
	for _, svc := range append(append([]*Service{}, s.Orders...), s.Payments...) {
		if svc.Running() {
			_ = svc.Kill()
		}
	}
	s.OrderDB.Close()
	s.PaymentDB.Close()
	if admin, err := sarama.NewClusterAdmin(s.Kafka.Brokers, s.Kafka.ConsumerConfig()); err == nil {
		for _, t := range []string{s.Topics.Orders, s.Topics.Payments, s.Topics.OrderPoison, s.Topics.PaymentPoison} {
			_ = admin.DeleteTopic(t)
		}
		_ = admin.Close()
	}
}

// Account is a payment account to seed.
type Account struct {
	CustomerID   string
	BalanceCents int64
	Currency     string
}

// SeedAccounts inserts (or resets) accounts in the payment database; the payment
// service must have migrated it (Start) first.
func (s *Stack) SeedAccounts(accounts ...Account) error {
	for _, a := range accounts {
		if _, err := s.PaymentDB.Exec(`INSERT INTO accounts (customer_id, balance_cents, currency) VALUES (?, ?, ?)
			ON DUPLICATE KEY UPDATE balance_cents = VALUES(balance_cents), currency = VALUES(currency)`,
			a.CustomerID, a.BalanceCents, a.Currency); err != nil {
			return err
		}
	}
	return nil
}

// OrderView is an order as GET /orders/{id} returns it.
type OrderView struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customer_id"`
	AmountCents  int64  `json:"amount_cents"`
	Currency     string `json:"currency"`
	Status       string `json:"status"`
	CancelReason string `json:"cancel_reason"`
	Paid         bool   `json:"paid"`
	Refunded     bool   `json:"refunded"`
	// RefundFailure says why a refund could not be made.
	RefundFailure string `json:"refund_failure"`
	Version       int    `json:"version"`
}

// PlaceOrder posts an order to the order replica number replica (modulo the
// count) and returns the HTTP status and, for a 201, the order.
func (s *Stack) PlaceOrder(ctx context.Context, replica int, customer string, amountCents int64, currency string) (int, OrderView, error) {
	body, _ := json.Marshal(map[string]any{"customer_id": customer, "amount_cents": amountCents, "currency": currency})
	addr := s.Orders[replica%len(s.Orders)].HTTPAddr
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/orders", bytes.NewReader(body))
	if err != nil {
		return 0, OrderView{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return s.do(req)
}

// GetOrder reads an order through the first order replica that answers.
func (s *Stack) GetOrder(ctx context.Context, id string) (int, OrderView, error) {
	var lastErr error
	for _, o := range s.Orders {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.HTTPAddr+"/orders/"+id, nil)
		if err != nil {
			return 0, OrderView{}, err
		}
		status, v, err := s.do(req)
		if err == nil && status < 500 {
			return status, v, nil
		}
		lastErr = fmt.Errorf("status %d: %v", status, err) //nolint:errorlint // err is nil on a 5xx answer
	}
	return 0, OrderView{}, lastErr
}

func (s *Stack) do(req *http.Request) (int, OrderView, error) {
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, OrderView{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, OrderView{}, err
	}
	var v OrderView
	if resp.StatusCode < 300 {
		if err := json.Unmarshal(data, &v); err != nil {
			return resp.StatusCode, v, fmt.Errorf("decoding %s: %w", strings.TrimSpace(string(data)), err)
		}
	}
	return resp.StatusCode, v, nil
}

// WaitTerminal polls the orders until each is CONFIRMED or CANCELLED (and, for
// a paid and cancelled order, refunded) or timeout passes; it returns the last
// view of each order and the ids that did not get there.
func (s *Stack) WaitTerminal(ctx context.Context, ids []string, timeout time.Duration) (map[string]OrderView, []string) {
	views := map[string]OrderView{}
	pending := append([]string{}, ids...)
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []string
		for _, id := range pending {
			status, v, err := s.GetOrder(ctx, id)
			if err == nil && status == http.StatusOK {
				views[id] = v
				if v.Status == "CONFIRMED" || (v.Status == "CANCELLED" && (!v.Paid || v.Refunded)) {
					continue
				}
			}
			still = append(still, id)
		}
		pending = still
		if len(pending) > 0 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	return views, pending
}

// CancelOrder posts a cancellation through the first order replica that answers.
func (s *Stack) CancelOrder(ctx context.Context, id string) (int, OrderView, error) {
	var lastErr error
	for _, o := range s.Orders {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+o.HTTPAddr+"/orders/"+id+"/cancel", nil)
		if err != nil {
			return 0, OrderView{}, err
		}
		status, v, err := s.do(req)
		if err == nil && status < 500 {
			return status, v, nil
		}
		lastErr = fmt.Errorf("status %d: %v", status, err) //nolint:errorlint // err is nil on a 5xx answer
	}
	return 0, OrderView{}, lastErr
}

// Call sends an HTTP request to a service and decodes its JSON answer into out
// (if not nil). token, if set, goes in "Authorization: Bearer".
func (s *Stack) Call(ctx context.Context, svc *Service, method, path, token string, out any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+svc.HTTPAddr+path, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decoding %s: %w", strings.TrimSpace(string(data)), err)
		}
	}
	return resp.StatusCode, nil
}
