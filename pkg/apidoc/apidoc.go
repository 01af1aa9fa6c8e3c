// Package apidoc assembles and serves a service's OpenAPI 3.1 document (ADR
// 0046). A document is YAML kept next to the HTTP adapter that implements it
// (go:embed); parts shared by several services (the poison admin endpoints of
// package poison) are fragments merged into it. The service serves the result
// as JSON at GET /openapi.json. Nothing here validates requests: the document
// is checked against the server by tests (route coverage, response validation).
package apidoc

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"
	"go.yaml.in/yaml/v3"
)

// Path is where a service serves its document.
const Path = "/openapi.json"

// Build returns the JSON form of the YAML document base with each fragment
// merged into it: a fragment's "paths" and each map under its "components"
// (schemas, responses, parameters, headers, examples, securitySchemes) are
// added to base's. It fails on YAML that does not parse into a mapping, and
// when a fragment defines a path or component that base (or an earlier
// fragment) already has: merging never overwrites.
func Build(base []byte, fragments ...[]byte) ([]byte, error) {
	doc, err := parse(base)
	if err != nil {
		return nil, fmt.Errorf("openapi document: %w", err)
	}
	for i, f := range fragments {
		frag, err := parse(f)
		if err != nil {
			return nil, fmt.Errorf("openapi fragment %d: %w", i, err)
		}
		if err := merge(doc, frag, "paths"); err != nil {
			return nil, fmt.Errorf("openapi fragment %d: %w", i, err)
		}
		comps, _ := frag["components"].(map[string]any)
		for kind := range comps {
			into := section(doc, "components")
			if err := merge(into, comps, kind); err != nil {
				return nil, fmt.Errorf("openapi fragment %d: components: %w", i, err)
			}
		}
	}
	return json.Marshal(doc)
}

// Handler serves doc (the result of Build) as application/json; a service
// mounts it at GET Path.
func Handler(doc []byte) echo.HandlerFunc {
	return func(c echo.Context) error {
		return c.JSONBlob(http.StatusOK, doc)
	}
}

func parse(data []byte) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("empty document")
	}
	return m, nil
}

// section returns m[name] as a mapping, creating it if absent.
func section(m map[string]any, name string) map[string]any {
	s, ok := m[name].(map[string]any)
	if !ok {
		s = map[string]any{}
		m[name] = s
	}
	return s
}

// merge adds the entries of from[name] to into[name], refusing duplicates.
func merge(into, from map[string]any, name string) error {
	src, ok := from[name].(map[string]any)
	if !ok {
		return nil
	}
	dst := section(into, name)
	for k, v := range src {
		if _, dup := dst[k]; dup {
			return fmt.Errorf("%s %q is defined twice", name, k)
		}
		dst[k] = v
	}
	return nil
}
