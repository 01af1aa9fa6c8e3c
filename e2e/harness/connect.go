package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Connector is the name deploy/local/connect.sh registers Debezium's
// connector under.
const Connector = "order-outbox"

// connectorURL is the address of the connector's REST resource, plus suffix.
func (i *Infra) connectorURL(suffix string) string {
	return "http://127.0.0.1:" + strconv.Itoa(i.ConnectPort) + "/connectors/" + Connector + suffix
}

// ConnectorState returns the state Kafka Connect reports for the connector
// and its task (RUNNING, PAUSED, STOPPED, FAILED, UNASSIGNED): the task's if
// it has one, else the connector's.
func (i *Infra) ConnectorState(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, i.connectorURL("/status"), nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var st struct {
		Connector struct{ State string }   `json:"connector"`
		Tasks     []struct{ State string } `json:"tasks"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return "", fmt.Errorf("connector status (%s): %w", resp.Status, err)
	}
	if len(st.Tasks) > 0 && st.Connector.State == "RUNNING" {
		return st.Tasks[0].State, nil
	}
	return st.Connector.State, nil
}

// StopConnector stops the connector and its task (Kafka Connect's
// PUT .../stop: the task ends, its position stays) and waits until it is
// STOPPED.
func (i *Infra) StopConnector(ctx context.Context) error {
	return i.changeConnector(ctx, http.MethodPut, "/stop", "STOPPED")
}

// ResumeConnector starts a stopped or paused connector again and waits until
// its task runs.
func (i *Infra) ResumeConnector(ctx context.Context) error {
	return i.changeConnector(ctx, http.MethodPut, "/resume", "RUNNING")
}

// RestartFailedTask restarts the connector's task if it failed (Kafka
// Connect's POST .../restart?includeTasks=true&onlyFailed=true) and waits
// until it runs.
func (i *Infra) RestartFailedTask(ctx context.Context) error {
	return i.changeConnector(ctx, http.MethodPost, "/restart?includeTasks=true&onlyFailed=true", "RUNNING")
}

// changeConnector sends method to the connector's resource plus suffix and
// waits up to a minute until ConnectorState is want.
func (i *Infra) changeConnector(ctx context.Context, method, suffix, want string) error {
	req, err := http.NewRequestWithContext(ctx, method, i.connectorURL(suffix), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, i.connectorURL(suffix), resp.Status)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		state, err := i.ConnectorState(ctx)
		if err == nil && state == want {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("connector %s: state %q after a minute, want %s", Connector, state, want), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
