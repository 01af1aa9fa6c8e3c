package main

import (
	"strings"
	"testing"

	"github.com/caarlos0/env/v11"

	"github.com/onceflow/onceflow/pkg/audit"
	"github.com/onceflow/onceflow/pkg/servicemain"
)

// TestAuditorEnv: the audit phase's settings, read as each service reads its
// own, give both modes the auditor's default pacing and switch it off only in
// the off mode (a misspelt setting would compare the auditor with itself).
func TestAuditorEnv(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		vars := map[string]string{}
		for _, kv := range auditorEnv(on) {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		for _, prefix := range []string{"ORDER_", "PAYMENT_"} {
			var m servicemain.Messaging
			if err := env.ParseWithOptions(&m, env.Options{Prefix: prefix, Environment: vars}); err != nil {
				t.Fatal(err)
			}
			if got, want := m.Defaults().Audit, (audit.Settings{Disabled: !on}).Defaults(); got != want {
				t.Errorf("auditor %s, %s settings: %+v, want %+v", onOff(on), prefix, got, want)
			}
		}
	}
}
