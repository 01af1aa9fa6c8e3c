package apidoc_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/onceflow/onceflow/pkg/apidoc"
)

// TestBuild: a fragment's paths and components join the base document; a
// path or component defined twice, or YAML that is not a mapping, fails.
func TestBuild(t *testing.T) {
	base := []byte("openapi: 3.1.0\npaths:\n  /a: {get: {}}\ncomponents:\n  schemas:\n    A: {type: string}\n")
	tests := []struct {
		name     string
		fragment string
		wantErr  string
	}{
		{"merged", "paths:\n  /b: {post: {}}\ncomponents:\n  schemas:\n    B: {type: integer}\n  responses:\n    R: {description: r}\n", ""},
		{"duplicate path", "paths:\n  /a: {post: {}}\n", `paths "/a" is defined twice`},
		{"duplicate component", "components:\n  schemas:\n    A: {type: integer}\n", `schemas "A" is defined twice`},
		{"not a mapping", "- a\n- b\n", "fragment 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := apidoc.Build(base, []byte(tt.fragment))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Paths      map[string]any            `json:"paths"`
				Components map[string]map[string]any `json:"components"`
			}
			if err := json.Unmarshal(out, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.Paths["/a"] == nil || doc.Paths["/b"] == nil || doc.Components["schemas"]["A"] == nil ||
				doc.Components["schemas"]["B"] == nil || doc.Components["responses"]["R"] == nil {
				t.Fatalf("merged document %s", out)
			}
		})
	}
}
