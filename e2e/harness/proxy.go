package harness

import (
	"context"
	"fmt"
	"strings"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// Proxies are TCP proxies (Toxiproxy, run inside the test process) between the
// services and the servers, to add latency and cut connections. Kafka is proxied
// through the broker's second listener (Infra.KafkaProxiedPort), which tells
// clients to reconnect to the proxy, so that every broker connection of a
// service goes through it.
type Proxies struct {
	server  *toxiproxy.ApiServer
	proxies map[string]*toxiproxy.Proxy
	// Addr maps a server name (OrderDB, PaymentDB, Kafka) to the proxy's address.
	Addr map[string]string
}

// StartProxies starts one proxy per server of infra.
func StartProxies(infra *Infra) (*Proxies, error) {
	p := &Proxies{
		server:  toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop()),
		proxies: map[string]*toxiproxy.Proxy{},
		Addr:    map[string]string{},
	}
	upstream := map[string]string{
		OrderDB:   infra.OrderDBAddr(),
		PaymentDB: infra.PaymentDBAddr(),
		Kafka:     fmt.Sprintf("127.0.0.1:%d", infra.KafkaProxiedPort),
	}
	for name, up := range upstream {
		listen := fmt.Sprintf("127.0.0.1:%d", infra.KafkaProxiedAdvertisedPort)
		if name != Kafka {
			var err error
			if listen, err = FreeAddr(); err != nil {
				return nil, err
			}
		}
		proxy := toxiproxy.NewProxy(p.server, name, listen, up)
		if err := proxy.Start(); err != nil {
			p.Close()
			return nil, fmt.Errorf("proxy for %s: %w", name, err)
		}
		p.proxies[name], p.Addr[name] = proxy, listen
	}
	return p, nil
}

// AddLatency delays data in both directions through the proxy of server by
// latency ± jitter milliseconds, until RemoveLatency.
func (p *Proxies) AddLatency(server string, latencyMs, jitterMs int) error {
	for _, stream := range []string{"upstream", "downstream"} {
		_, err := p.proxies[server].Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
			`{"name":"latency_%s","type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`,
			stream, stream, latencyMs, jitterMs)))
		if err != nil {
			return err
		}
	}
	return nil
}

// RemoveLatency removes what AddLatency added.
func (p *Proxies) RemoveLatency(server string) error {
	for _, stream := range []string{"upstream", "downstream"} {
		if err := p.proxies[server].Toxics.RemoveToxic(context.Background(), "latency_"+stream); err != nil {
			return err
		}
	}
	return nil
}

// Cut closes every connection through the proxy of server and refuses new ones
// until Restore.
func (p *Proxies) Cut(server string) { p.proxies[server].Stop() }

// Restore accepts connections through the proxy of server again.
func (p *Proxies) Restore(server string) error { return p.proxies[server].Start() }

// Close stops every proxy.
func (p *Proxies) Close() {
	for _, proxy := range p.proxies {
		proxy.Stop()
	}
}
