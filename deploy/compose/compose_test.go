package compose_test

import (
	"bytes"
	"context"
	"debug/elf"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/onceflow/onceflow/deploy/compose"
	"github.com/onceflow/onceflow/pkg/events"
	"github.com/onceflow/onceflow/pkg/httpserver"
	"github.com/onceflow/onceflow/pkg/kafka"
)

// systemTopics is every topic the two services create at start (their
// service.go), with its partition count and settings.
func systemTopics() []kafka.TopicSpec {
	return []kafka.TopicSpec{
		{Name: events.TopicOrders, Partitions: events.DefaultPartitions},
		{Name: events.TopicPayments, Partitions: events.DefaultPartitions},
		kafka.PoisonTopicSpec(events.TopicOrderPoison),
		kafka.PoisonTopicSpec(events.TopicPaymentPoison),
	}
}

// TestComposeFile: compose.yaml is valid for the Compose specification, has every
// service the system needs (and Prometheus and Grafana) with a
// healthcheck, starts them in a safe order, and publishes the contract ports,
// each once.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatalf("compose.yaml does not load: %v", err)
	}
	tests := []struct {
		service    string
		hostPort   string // "" for none
		healthy    bool   // has a healthcheck
		dependsOn  map[string]string
		needsBuild bool
	}{
		{"order-db", "3307", true, nil, false},
		{"payment-db", "3308", true, nil, false},
		{"kafka", "9092", true, nil, false},
		{"kafka-init", "", false, map[string]string{"kafka": "service_healthy"}, false},
		{"payment", "8081", true, map[string]string{"payment-db": "service_healthy", "kafka": "service_healthy",
			"kafka-init": "service_completed_successfully"}, true},
		{"payment-seed", "", false, map[string]string{"payment": "service_healthy"}, false},
		{"order", "8080", true, map[string]string{"order-db": "service_healthy", "kafka": "service_healthy",
			"kafka-init": "service_completed_successfully", "payment": "service_healthy"}, true},
		{"prometheus", "9090", true, nil, false},
		{"grafana", "3000", true, map[string]string{"prometheus": "service_healthy"}, false},
	}
	published := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			s, ok := p.Services[tt.service]
			if !ok {
				t.Fatalf("no service %q", tt.service)
			}
			if tt.healthy && (s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable) {
				t.Errorf("no healthcheck")
			}
			for dep, cond := range tt.dependsOn {
				if got := s.DependsOn[dep].Condition; got != cond {
					t.Errorf("depends_on %s: condition %q, want %q", dep, got, cond)
				}
			}
			if tt.needsBuild && (s.Build == nil || !strings.HasSuffix(s.Build.Dockerfile, "deploy/compose/Dockerfile")) {
				t.Errorf("not built from deploy/compose/Dockerfile")
			}
			var ports []string
			for _, port := range s.Ports {
				ports = append(ports, port.Published)
				if other, dup := published[port.Published]; dup {
					t.Errorf("host port %s also published by %s", port.Published, other)
				}
				published[port.Published] = tt.service
			}
			if tt.hostPort != "" && (len(ports) != 1 || ports[0] != tt.hostPort) {
				t.Errorf("published ports %v, want [%s]", ports, tt.hostPort)
			}
		})
	}
	kafkaImage := "apache/kafka:" + localKafkaVersion(t)
	for _, want := range []string{"mariadb:11.4", kafkaImage} {
		found := false
		for _, s := range p.Services {
			found = found || s.Image == want
		}
		if !found {
			t.Errorf("no service uses image %s", want)
		}
	}
	// One Kafka version for compose and `make run` (ADR 0055).
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "apache/kafka:") && s.Image != kafkaImage {
			t.Errorf("%s uses %s, want %s (the version of deploy/local/pom.xml)", name, s.Image, kafkaImage)
		}
	}
}

// localKafkaVersion is the Kafka version `make run` fetches: deploy/local/pom.xml's
// kafka.version.
func localKafkaVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "local", "pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`<kafka\.version>([^<]+)</kafka\.version>`).FindSubmatch(b)
	if m == nil {
		t.Fatal("deploy/local/pom.xml has no <kafka.version>")
	}
	return string(m[1])
}

// TestComposeCreatesTheTopics: the one-shot topic step creates exactly
// systemTopics(), with their partition counts.
func TestComposeCreatesTheTopics(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(p.Services["kafka-init"].Command, " ")
	for _, topic := range systemTopics() {
		want := topic.Name + ":" + itoa(topic.Partitions)
		if !strings.Contains(script, want) {
			t.Errorf("kafka-init does not create %s (looked for %q in %q)", topic.Name, want, script)
		}
	}
}

// TestComposeKeepsPoisonForever: kafka-init gives each poison topic of
// systemTopics() its settings (retention.ms=-1), on creation and on a topic
// that exists already.
func TestComposeKeepsPoisonForever(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	script := strings.Join(p.Services["kafka-init"].Command, " ")
	for _, topic := range systemTopics() {
		for k, v := range topic.Config {
			if !strings.Contains(script, "--config "+k+"="+v) || !strings.Contains(script, "--add-config "+k+"="+v) {
				t.Errorf("kafka-init does not set %s=%s on %s", k, v, topic.Name)
			}
		}
	}
	if !strings.Contains(script, "retention.ms=-1") {
		t.Error("kafka-init sets no unlimited retention")
	}
}

// TestComposeSeedsTheDemoAccounts: the demo customers come from the one-shot
// payment-seed step with deploy/demo/accounts.sql, not from a migration.
func TestComposeSeedsTheDemoAccounts(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.Services["payment-seed"]
	if !ok {
		t.Fatal("no payment-seed service")
	}
	mounted := false
	for _, v := range s.Volumes {
		mounted = mounted || strings.HasSuffix(v.Source, "deploy/demo/accounts.sql")
	}
	if !mounted || !strings.Contains(strings.Join(s.Command, " "), "/seed/accounts.sql") {
		t.Fatalf("payment-seed does not load deploy/demo/accounts.sql: volumes %+v, command %q", s.Volumes, s.Command)
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// TestDockerBuildCommand runs the Dockerfile's `go build` line, with its flags and
// CGO_ENABLED=0, for both services, and checks that the results are static
// executables (what the distroless image needs) without the fault-injection
// code. It does not run Docker.
func TestDockerBuildCommand(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds both services: skipped with -short")
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^RUN (CGO_ENABLED=0 .*go build .* -o /out/service \./services/\$\{SERVICE\})$`).FindSubmatch(dockerfile)
	if m == nil {
		t.Fatal("the Dockerfile has no `RUN CGO_ENABLED=0 ... go build ... -o /out/service ./services/${SERVICE}` line")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	for _, svc := range []string{"order", "payment"} {
		t.Run(svc, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), svc)
			line := strings.NewReplacer("/out/service", out, "${SERVICE}", svc).Replace(string(m[1]))
			cmd := exec.Command("bash", "-c", line) // the RUN line, as the image's shell runs it
			cmd.Dir = root
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
			}
			f, err := elf.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_INTERP {
					t.Fatalf("%s is dynamically linked; the distroless static image cannot run it", svc)
				}
			}
			// No fault-injection code: its log line and its switches' names
			// are string data that even a stripped binary keeps.
			bin, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			for _, mark := range []string{"FAULT INJECTION", "REFUSE_MID_BATCH", "DISABLE_INBOX"} {
				if bytes.Contains(bin, []byte(mark)) {
					t.Errorf("the %s image binary contains %q: it was built with the fault-injection code", svc, mark)
				}
			}
		})
	}
}

// TestComposeDefaultProfile: a plain `docker compose up` enables the profile
// "single" (COMPOSE_PROFILES in the .env of the repository root, and in the one
// of deploy/compose for `-f deploy/compose/compose.yaml`), every Kafka node
// belongs to exactly one of the profiles "single" and "cluster" (a node without
// a profile would run in both), only Kafka Connect's services have another (the
// profile "debezium"), and the file also loads with every profile on
// (`make down`).
func TestComposeDefaultProfile(t *testing.T) {
	t.Parallel()
	for _, file := range []string{compose.RootFile(), compose.File()} {
		got, err := compose.DefaultProfiles(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != "single" {
			t.Errorf("%s enables the profiles %v by default, want [single]", compose.DotEnv(file), got)
		}
	}
	p, err := compose.Load(context.Background(), "*")
	if err != nil {
		t.Fatalf("compose.yaml does not load with every profile: %v", err)
	}
	nodes := 0
	for name, s := range p.Services {
		if !isKafkaNode(s) {
			want := ""
			if slices.Contains(connectServices, name) {
				want = "debezium"
			}
			if strings.Join(s.Profiles, ",") != want {
				t.Errorf("%s has the profiles %v, want [%s]: only Kafka nodes and Kafka Connect depend on a profile", name, s.Profiles, want)
			}
			continue
		}
		nodes++
		if len(s.Profiles) != 1 || (s.Profiles[0] != "single" && s.Profiles[0] != "cluster") {
			t.Errorf("Kafka node %s has the profiles %v, want exactly one of [single] and [cluster]", name, s.Profiles)
		}
	}
	if nodes != 4 {
		t.Errorf("%d Kafka nodes in all, want 4 (kafka, kafka-1..3)", nodes)
	}
}

// TestComposeKafkaProfiles: with each profile, the Kafka nodes that run are
// configured as one cluster (combined broker+controller nodes with unique ids, a
// shared cluster id, the voters list naming exactly these nodes at their
// controller ports, each node's replication settings, its own data volume, its own
// host port that matches what it advertises), and the services and kafka-init
// name only these nodes as brokers, reach all of them, and wait until they are
// healthy.
func TestComposeKafkaProfiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		profiles  []string // nil: the default of .env
		nodes     []string
		hostPorts []string
		rf        string // default, offsets and transaction log replication factor
		minISR    string // min.insync.replicas and the transaction log's
	}{
		{"default: one node", nil, []string{"kafka"}, []string{"9092"}, "1", "1"},
		{"cluster", []string{"cluster"}, []string{"kafka-1", "kafka-2", "kafka-3"}, []string{"9092", "9093", "9094"}, "3", "2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := compose.Load(context.Background(), tt.profiles...)
			if err != nil {
				t.Fatalf("compose.yaml does not load: %v", err)
			}
			var nodes []string
			for name, s := range p.Services {
				if isKafkaNode(s) {
					nodes = append(nodes, name)
				}
			}
			slices.Sort(nodes)
			if !slices.Equal(nodes, tt.nodes) {
				t.Fatalf("Kafka nodes %v, want %v", nodes, tt.nodes)
			}
			if rf, _ := strconv.Atoi(tt.rf); rf != len(nodes) {
				t.Fatalf("test table: replication factor %s with %d nodes", tt.rf, len(nodes))
			}
			checkKafkaNodes(t, p, nodes, tt.rf, tt.minISR, tt.hostPorts)
			checkBrokerClients(t, p, nodes)
		})
	}
}

// checkKafkaNodes checks the settings of each node and that they agree.
func checkKafkaNodes(t *testing.T, p *types.Project, nodes []string, rf, minISR string, hostPorts []string) {
	t.Helper()
	ids := map[string]string{}         // node id -> service
	clusterIDs := map[string]bool{}    // CLUSTER_ID values
	voterLists := map[string]bool{}    // KAFKA_CONTROLLER_QUORUM_VOTERS values
	dataVolumes := map[string]string{} // volume -> service
	var published []string
	for _, name := range nodes {
		s := p.Services[name]
		e := func(k string) string { return envValue(s, k) }
		for k, want := range map[string]string{
			"KAFKA_PROCESS_ROLES":                            "broker,controller",
			"KAFKA_DEFAULT_REPLICATION_FACTOR":               rf,
			"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR":         rf,
			"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": rf,
			"KAFKA_MIN_INSYNC_REPLICAS":                      minISR,
			"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR":            minISR,
			"KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE":           "false",
			"KAFKA_AUTO_CREATE_TOPICS_ENABLE":                "false",
			"KAFKA_INTER_BROKER_LISTENER_NAME":               "INTERNAL",
			"KAFKA_CONTROLLER_LISTENER_NAMES":                "CONTROLLER",
		} {
			if got := e(k); got != want {
				t.Errorf("%s: %s=%q, want %q", name, k, got, want)
			}
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 || s.HealthCheck.Disable {
			t.Errorf("%s: no healthcheck", name)
		}
		id := e("KAFKA_NODE_ID")
		if other, dup := ids[id]; dup || id == "" {
			t.Errorf("%s: node id %q, also %s's", name, id, other)
		}
		ids[id] = name
		clusterIDs[e("CLUSTER_ID")] = true
		voterLists[e("KAFKA_CONTROLLER_QUORUM_VOTERS")] = true

		listeners, advertised := listenerMap(t, name, e("KAFKA_LISTENERS")), listenerMap(t, name, e("KAFKA_ADVERTISED_LISTENERS"))
		// Containers reach the node by a name that is the node's own.
		internal := advertised["INTERNAL"]
		if got := resolve(p, internal.host); !slices.Equal(got, []string{name}) || internal.port != listeners["INTERNAL"].port {
			t.Errorf("%s: advertises INTERNAL %s:%s, which reaches %v port %s", name, internal.host, internal.port, got, listeners["INTERNAL"].port)
		}
		// The host reaches the node on its published port.
		external := advertised["EXTERNAL"]
		if len(s.Ports) != 1 {
			t.Errorf("%s: publishes %d ports, want 1", name, len(s.Ports))
		} else {
			port := s.Ports[0]
			published = append(published, port.Published)
			if external.host != "127.0.0.1" || external.port != port.Published || strconv.Itoa(int(port.Target)) != listeners["EXTERNAL"].port {
				t.Errorf("%s: advertises EXTERNAL %s:%s and listens on %s, but publishes %s -> %d", name,
					external.host, external.port, listeners["EXTERNAL"].port, port.Published, port.Target)
			}
		}
		// Its own data volume, where Kafka writes (the image's default is /tmp).
		found := false
		for _, v := range s.Volumes {
			if v.Type == types.VolumeTypeVolume && v.Target == e("KAFKA_LOG_DIRS") {
				found = true
				if other, dup := dataVolumes[v.Source]; dup {
					t.Errorf("%s: data volume %s also %s's", name, v.Source, other)
				}
				dataVolumes[v.Source] = name
			}
		}
		if !found {
			t.Errorf("%s: KAFKA_LOG_DIRS=%q is not a mounted volume", name, e("KAFKA_LOG_DIRS"))
		}
	}
	slices.Sort(published)
	if !slices.Equal(published, hostPorts) {
		t.Errorf("host ports %v, want %v", published, hostPorts)
	}
	if len(clusterIDs) != 1 {
		t.Errorf("the nodes have different cluster ids: %v", clusterIDs)
	}
	if len(nodes) > 1 && (clusterIDs[""] || clusterIDs["5L6g3nShT-eMCtK--X86sw"]) {
		t.Errorf("the cluster uses the apache/kafka image's default cluster id; set its own CLUSTER_ID")
	}
	if len(voterLists) != 1 {
		t.Fatalf("the nodes have different quorum voters: %v", voterLists)
	}
	// The voters are exactly the nodes, each at its own name and controller port.
	var voters string
	for v := range voterLists {
		voters = v
	}
	seen := map[string]bool{}
	for _, voter := range strings.Split(voters, ",") {
		id, addr, ok := strings.Cut(voter, "@")
		host, port, ok2 := strings.Cut(addr, ":")
		node, known := ids[id]
		if !ok || !ok2 || !known || seen[id] {
			t.Errorf("voter %q: not one of the nodes %v, or twice", voter, ids)
			continue
		}
		seen[id] = true
		ctrl := listenerMap(t, node, envValue(p.Services[node], "KAFKA_LISTENERS"))["CONTROLLER"]
		if got := resolve(p, host); !slices.Equal(got, []string{node}) || port != ctrl.port {
			t.Errorf("voter %q reaches %v port %s, want node %s's controller port %s", voter, got, port, node, ctrl.port)
		}
	}
	if len(seen) != len(nodes) {
		t.Errorf("voters %q: %d of the %d nodes", voters, len(seen), len(nodes))
	}
}

// checkBrokerClients checks that both services and kafka-init bootstrap from
// the nodes only, reach every node, and start after them.
func checkBrokerClients(t *testing.T, p *types.Project, nodes []string) {
	t.Helper()
	clients := map[string]string{"order": "ORDER_KAFKA_BROKERS", "payment": "PAYMENT_KAFKA_BROKERS", "kafka-init": "BOOTSTRAP"}
	for svc, variable := range clients {
		s := p.Services[svc]
		reached := map[string]bool{}
		for _, broker := range strings.Split(envValue(s, variable), ",") {
			host, port, _ := strings.Cut(broker, ":")
			got := resolve(p, host)
			if len(got) != 1 || !isKafkaNode(p.Services[got[0]]) {
				t.Errorf("%s: %s names %q, which reaches %v, not one Kafka node", svc, variable, broker, got)
				continue
			}
			if want := listenerMap(t, got[0], envValue(p.Services[got[0]], "KAFKA_LISTENERS"))["INTERNAL"].port; port != want {
				t.Errorf("%s: %s names %q, but %s's INTERNAL port is %s", svc, variable, broker, got[0], want)
			}
			reached[got[0]] = true
		}
		if len(reached) != len(nodes) {
			t.Errorf("%s: %s=%q reaches %v, want all of %v", svc, variable, envValue(s, variable), reached, nodes)
		}
		for _, node := range nodes {
			if got := s.DependsOn[node].Condition; got != "service_healthy" {
				t.Errorf("%s: depends_on %s: condition %q, want service_healthy", svc, node, got)
			}
		}
		if svc != "kafka-init" && s.DependsOn["kafka-init"].Condition != "service_completed_successfully" {
			t.Errorf("%s does not wait for kafka-init", svc)
		}
	}
	// Topics take the nodes' default.replication.factor (checked above).
	if script := strings.Join(p.Services["kafka-init"].Command, " "); strings.Contains(script, "--replication-factor") {
		t.Errorf("kafka-init sets a replication factor; it must take the brokers' default.replication.factor")
	}
}

// isKafkaNode reports whether s runs a Kafka broker (not a one-shot step).
func isKafkaNode(s types.ServiceConfig) bool {
	return strings.HasPrefix(s.Image, "apache/kafka:") && envValue(s, "KAFKA_PROCESS_ROLES") != ""
}

// envValue is the value compose gives variable k in s ("" if unset).
func envValue(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

// resolve returns the enabled services that answer to host on the project's
// network: by service name or network alias.
func resolve(p *types.Project, host string) []string {
	var out []string
	for name, s := range p.Services {
		answers := name == host
		for _, n := range s.Networks {
			answers = answers || (n != nil && slices.Contains(n.Aliases, host))
		}
		if answers {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

type hostPort struct{ host, port string }

// listenerMap parses a Kafka listener list ("NAME://host:port,...").
func listenerMap(t *testing.T, node, list string) map[string]hostPort {
	t.Helper()
	m := map[string]hostPort{}
	for _, l := range strings.Split(list, ",") {
		name, addr, ok := strings.Cut(l, "://")
		i := strings.LastIndex(addr, ":")
		if !ok || i < 0 {
			t.Errorf("%s: listener %q is not NAME://host:port", node, l)
			continue
		}
		m[name] = hostPort{addr[:i], addr[i+1:]}
	}
	return m
}

// TestComposeLeastPrivilege: each database container creates its
// service's users from deploy/dbusers on first start, and each service
// migrates as the migration user and runs as the service user of its own
// database; no container uses the test superuser onceflow.
func TestComposeLeastPrivilege(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ db, service, prefix, schema string }{
		{"order-db", "order", "ORDER_", "orders"},
		{"payment-db", "payment", "PAYMENT_", "payments"},
	}
	for _, tt := range tests {
		mounted := false
		for _, v := range p.Services[tt.db].Volumes {
			mounted = mounted || strings.HasSuffix(v.Source, "deploy/dbusers/"+tt.db+".sql") &&
				strings.HasPrefix(v.Target, "/docker-entrypoint-initdb.d/")
		}
		if !mounted {
			t.Errorf("%s does not run deploy/dbusers/%s.sql at its initialisation: %+v", tt.db, tt.db, p.Services[tt.db].Volumes)
		}
		env := p.Services[tt.service].Environment
		for variable, user := range map[string]string{"DB_DSN": tt.schema + "_app", "DB_MIGRATE_DSN": tt.schema + "_migrate"} {
			var v string
			if p := env[tt.prefix+variable]; p != nil {
				v = *p
			}
			if !strings.HasPrefix(v, user+":") || !strings.HasSuffix(v, "/"+tt.schema) {
				t.Errorf("%s: %s%s = %q, want user %s on database %s", tt.service, tt.prefix, variable, v, user, tt.schema)
			}
		}
	}
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if v != nil && strings.Contains(*v, "onceflow:") || k == "MARIADB_USER" {
				t.Errorf("%s: %s uses the test superuser (or creates a user of its own)", name, k)
			}
		}
	}
}

// TestComposeServicesAnswerTheirCallers: each service's *_HTTP_ALLOWED_HOSTS
// admits every name it is called by: localhost for the host's
// browser and curl, the Prometheus target, and for the payment service the
// order service's ORDER_CONSOLE_PAYMENT_URL. A name missing there would get
// 421 from the service's guard.
func TestComposeServicesAnswerTheirCallers(t *testing.T) {
	t.Parallel()
	p, err := compose.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	env := func(service, name string) string {
		if v := p.Services[service].Environment[name]; v != nil {
			return *v
		}
		return ""
	}
	var prom promConfig
	readYAML(t, "deploy/prometheus/prometheus.yml", &prom)
	callers := map[string][]string{"order": {"localhost:8080"}, "payment": {"localhost:8081"}}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			callers[sc.JobName] = append(callers[sc.JobName], st.Targets...)
		}
	}
	console, err := url.Parse(env("order", "ORDER_CONSOLE_PAYMENT_URL"))
	if err != nil || console.Host == "" {
		t.Fatalf("ORDER_CONSOLE_PAYMENT_URL %q: %v", env("order", "ORDER_CONSOLE_PAYMENT_URL"), err)
	}
	callers["payment"] = append(callers["payment"], console.Host)

	for svc, hosts := range callers {
		variable := strings.ToUpper(svc) + "_HTTP_ALLOWED_HOSTS"
		if env(svc, variable) == "" {
			t.Errorf("compose does not set %s: the %s service answers only to localhost", variable, svc)
			continue
		}
		cfg := httpserver.Config{AllowedHosts: strings.Split(env(svc, variable), ",")}.Defaults()
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s=%q: %v", variable, env(svc, variable), err)
			continue
		}
		guarded := cfg.Guard(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
		for _, host := range hosts {
			req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
			req.Host = host
			rec := httptest.NewRecorder()
			guarded.ServeHTTP(rec, req)
			if rec.Code != http.StatusNoContent {
				t.Errorf("%s answers Host %s with %d: add its name to compose's %s", svc, host, rec.Code, variable)
			}
		}
	}
}

// connectServices are the services of the profile debezium.
var connectServices = []string{"connect-plugins", "connect", "connect-init"}

// TestComposeDebeziumProfile: the profile debezium runs the worker and the
// connector of `make run ORDER_OUTBOX_RELAY=debezium`: its files in ./connect
// are what `infra.sh compose-connect` writes today; the order database writes
// the binary log the connector reads; the order service leaves its outbox to
// Debezium only when asked (batch by default); the worker starts after its
// plugins, Kafka's topics and the order database, and the registration after
// the worker is healthy.
func TestComposeDebeziumProfile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if out, err := exec.Command("../local/infra.sh", "compose-connect", dir).CombinedOutput(); err != nil {
		t.Fatalf("infra.sh compose-connect: %v\n%s", err, out)
	}
	for _, f := range []string{"worker.properties", "order-outbox.json"} {
		want, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("connect", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("deploy/compose/connect/%s is not what infra.sh compose-connect writes: run deploy/local/infra.sh compose-connect deploy/compose/connect", f)
		}
	}
	p, err := compose.Load(context.Background(), "debezium", "single")
	if err != nil {
		t.Fatal(err)
	}
	db := strings.Join(p.Services["order-db"].Command, " ")
	for _, flag := range []string{"--log-bin=", "--binlog-format=ROW", "--binlog-row-image=FULL", "--server-id="} {
		if !strings.Contains(db, flag) {
			t.Errorf("order-db's command %q lacks %s", db, flag)
		}
	}
	if got := p.Services["order"].Environment["ORDER_OUTBOX_RELAY"]; got == nil || *got != "batch" {
		t.Errorf("order's ORDER_OUTBOX_RELAY = %v, want batch unless asked", got)
	}
	for _, tt := range []struct {
		service   string
		dependsOn map[string]string
	}{
		{"connect", map[string]string{"connect-plugins": "service_completed_successfully",
			"kafka-init": "service_completed_successfully", "order-db": "service_healthy"}},
		{"connect-init", map[string]string{"connect": "service_healthy"}},
	} {
		s := p.Services[tt.service]
		for dep, cond := range tt.dependsOn {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s depends_on %s: condition %q, want %q", tt.service, dep, got, cond)
			}
		}
	}
	if hc := p.Services["connect"].HealthCheck; hc == nil || len(hc.Test) == 0 {
		t.Error("connect has no healthcheck")
	}
}
