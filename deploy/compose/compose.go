// Package compose loads deploy/compose/compose.yaml with the Compose
// specification's own Go loader, so that tests can check it on machines without
// Docker (see compose_test.go and each service's config test).
package compose

import (
	"context"
	"path/filepath"
	"reflect"
	"runtime"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// File is the path of compose.yaml.
func File() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "compose.yaml")
}

// Load parses, interpolates, normalises and validates compose.yaml, as
// `docker compose config` would, without any environment variable set.
func Load(ctx context.Context) (*types.Project, error) {
	details, err := loader.LoadConfigFiles(ctx, []string{File()}, filepath.Dir(File()))
	if err != nil {
		return nil, err
	}
	details.Environment = types.Mapping{}
	return loader.LoadWithContext(ctx, *details, func(o *loader.Options) {
		o.SetProjectName("onceflow", true)
	})
}

// EnvNames returns the names of the environment variables a configuration
// struct reads: every `env` tag, with the `envPrefix` of the structs that contain
// it (the conventions of github.com/caarlos0/env).
func EnvNames(cfg any) map[string]bool {
	names := map[string]bool{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			if name := f.Tag.Get("env"); name != "" {
				names[prefix+name] = true
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+f.Tag.Get("envPrefix"))
			}
		}
	}
	walk(reflect.TypeOf(cfg), "")
	return names
}
