// Package docs holds the test that keeps the documentation's links and code
// paths true: README.md and every page under docs/ are read, no server needed.
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var (
	// [text](target): the target up to a space or the closing parenthesis.
	markdownLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	heading      = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	fence        = regexp.MustCompile("(?ms)^```.*?^```")
	// `pkg/outbox/relay.go`, `services/order/internal/app`: a repository path in code quotes.
	codePath = regexp.MustCompile("`((?:pkg|services|internal|e2e|deploy|examples)/[A-Za-z0-9_./-]*)`")
)

// pages: README.md and every Markdown file under docs/, relative to the repository root.
func pages(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	err := filepath.WalkDir("../docs", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(path, ".md") {
			files = append(files, strings.TrimPrefix(path, "../"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// anchor is GitHub's id of a heading: lower case, punctuation dropped, spaces to hyphens.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func anchors(t *testing.T, page string) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", page))
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range heading.FindAllStringSubmatch(fence.ReplaceAllString(string(text), ""), -1) {
		ids[anchor(m[1])] = true
	}
	return ids
}

// TestLinksResolve: every relative link of README.md and docs/**/*.md names a
// file or directory that exists, and a #fragment names a heading of its page.
func TestLinksResolve(t *testing.T) {
	t.Parallel()
	for _, page := range pages(t) {
		text, err := os.ReadFile(filepath.Join("..", page))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range markdownLink.FindAllStringSubmatch(string(text), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, fragment, _ := strings.Cut(target, "#")
			resolved := page
			if file != "" {
				resolved = filepath.Join(filepath.Dir(page), file)
				if _, err := os.Stat(filepath.Join("..", resolved)); err != nil {
					t.Errorf("%s links to %s, which does not exist", page, target)
					continue
				}
			}
			if fragment != "" && strings.HasSuffix(resolved, ".md") && !anchors(t, resolved)[fragment] {
				t.Errorf("%s links to %s, but %s has no heading #%s", page, target, resolved, fragment)
			}
		}
	}
}

// TestCodePathsExist: every repository path the pages quote as code
// (`pkg/...`, `services/...`) exists; a path with a pattern in it (*, <, {) is
// a description, not a path, and is skipped.
func TestCodePathsExist(t *testing.T) {
	t.Parallel()
	for _, page := range pages(t) {
		if strings.HasPrefix(page, "docs/adr/0") {
			continue // a record tells what was true when it was taken
		}
		text, err := os.ReadFile(filepath.Join("..", page))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range codePath.FindAllStringSubmatch(string(text), -1) {
			path := strings.TrimRight(m[1], ".")
			if _, err := os.Stat(filepath.Join("..", path)); err != nil {
				t.Errorf("%s names %s, which does not exist", page, path)
			}
		}
	}
}

// TestEveryADRIsIndexed: docs/adr/README.md links every record in docs/adr/,
// so a new ADR is found by its topic.
func TestEveryADRIsIndexed(t *testing.T) {
	t.Parallel()
	index, err := os.ReadFile("adr/README.md")
	if err != nil {
		t.Fatal(err)
	}
	records, err := filepath.Glob("adr/[0-9][0-9][0-9][0-9]-*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range records {
		if !strings.Contains(string(index), "("+filepath.Base(r)+")") {
			t.Errorf("docs/adr/README.md does not list %s: add it under its topic", r)
		}
	}
}
