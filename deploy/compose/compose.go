// Package compose loads the compose files (the repository root's compose.yaml,
// which includes deploy/compose/compose.yaml) with the Compose specification's
// own Go loader, so that tests can check them on machines without Docker (see
// compose_test.go and each service's config test).
package compose

import (
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

// File is the path of deploy/compose/compose.yaml, which holds the services.
func File() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "compose.yaml")
}

// RootFile is the path of the repository root's compose.yaml: it includes File,
// and is what a plain `docker compose up` run from the root (and `make up`) loads.
func RootFile() string {
	return filepath.Join(filepath.Dir(File()), "..", "..", "compose.yaml")
}

// DotEnv is the path of the .env next to a compose file, which docker compose
// reads for variables and for COMPOSE_PROFILES, the profiles it enables when no
// --profile is given.
func DotEnv(file string) string { return filepath.Join(filepath.Dir(file), ".env") }

// DefaultProfiles returns the profiles a plain `docker compose -f file up`
// enables: the comma-separated COMPOSE_PROFILES of the .env next to file (none
// if the .env or the variable is absent). It fails if .env exists but cannot be
// read or parsed.
func DefaultProfiles(file string) ([]string, error) {
	env, err := dotEnv(file)
	if err != nil {
		return nil, err
	}
	var profiles []string
	for _, p := range strings.Split(env["COMPOSE_PROFILES"], ",") {
		if p = strings.TrimSpace(p); p != "" {
			profiles = append(profiles, p)
		}
	}
	return profiles, nil
}

func dotEnv(file string) (map[string]string, error) {
	env, err := dotenv.Read(DotEnv(file))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	return env, err
}

// Load is LoadFile of RootFile: the project a user starts from the repository root.
func Load(ctx context.Context, profiles ...string) (*types.Project, error) {
	return LoadFile(ctx, RootFile(), profiles...)
}

// LoadFile parses, interpolates, normalises and validates file (with what it
// includes), as `docker compose -f file config` would with no variable set but
// those of the .env next to it: with profiles enabled (like --profile; "*"
// enables all), or, if none is given, with DefaultProfiles. Services of other
// profiles are in the project's DisabledServices, and the services' optional
// (`required: false`) dependencies on them are dropped, as `docker compose up`
// drops them. It fails if the file does not load or validate, or if .env cannot
// be read.
func LoadFile(ctx context.Context, file string, profiles ...string) (*types.Project, error) {
	env, err := dotEnv(file)
	if err != nil {
		return nil, err
	}
	if len(profiles) == 0 {
		if profiles, err = DefaultProfiles(file); err != nil {
			return nil, err
		}
	}
	details, err := loader.LoadConfigFiles(ctx, []string{file}, filepath.Dir(file))
	if err != nil {
		return nil, err
	}
	details.Environment = types.Mapping(env)
	p, err := loader.LoadWithContext(ctx, *details, func(o *loader.Options) {
		o.SetProjectName("onceflow", true)
		o.Profiles = profiles
	})
	if err != nil {
		return nil, err
	}
	return p.WithoutUnresolvedOptionalDependencies(), nil
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
