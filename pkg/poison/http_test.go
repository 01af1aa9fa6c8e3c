package poison_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/onceflow/onceflow/pkg/poison"
	"github.com/onceflow/onceflow/pkg/poison/poisonhttp"
)

// TestAdminRoutesAnswerBeforeTheTool: the answers the admin endpoints give
// without touching Kafka or the database (a zero Tool). Schemathesis found the
// first and the last: a known path with another method is 405 with
// its Allow header (the guard is per route, not Echo's group catch-all that
// answered 404), also where a parameter route would catch the path ("GET
// /replay" is not the offset "replay"), and "?up_to=" with no value is a 400,
// not "purge everything"; nor is a listing's empty cursor "from the newest".
// A bulk replay without its dry run's token is a 428, before anything is read.
func TestAdminRoutesAnswerBeforeTheTool(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, path, token string
		want                      int
		wantAllow                 string
	}{
		{"another method on a known path", http.MethodDelete, "/admin/poison", "secret", 405, "GET"},
		{"another method, without a token", http.MethodPut, "/admin/poison/purge", "", 405, "POST"},
		{"TRACE on a parked row", http.MethodTrace, "/admin/poison/parked/7", "secret", 405, "GET"},
		{"GET on POST /replay, not an offset", http.MethodGet, "/admin/poison/replay", "secret", 405, "POST"},
		{"GET on POST /purge, without a token", http.MethodGet, "/admin/poison/purge", "", 405, "POST"},
		{"GET on POST /parked/replay, not a row id", http.MethodGet, "/admin/poison/parked/replay", "secret", 405, "POST"},
		{"POST on GET /parked, not a row to replay", http.MethodPost, "/admin/poison/parked", "secret", 405, "GET"},
		{"no token", http.MethodGet, "/admin/poison", "", 401, ""},
		{"wrong token", http.MethodGet, "/admin/poison/keys", "nope", 401, ""},
		{"unknown path", http.MethodGet, "/admin/poison/nothing/here", "secret", 404, ""},
		{"purge with an empty up_to", http.MethodPost, "/admin/poison/purge?up_to=", "secret", 400, ""},
		{"purge with a negative up_to", http.MethodPost, "/admin/poison/purge?up_to=-1", "secret", 400, ""},
		{"list with an empty cursor", http.MethodGet, "/admin/poison?cursor=", "secret", 400, ""},
		{"list with a negative cursor", http.MethodGet, "/admin/poison?cursor=-1", "secret", 400, ""},
		{"list with a limit of 0", http.MethodGet, "/admin/poison?limit=0", "secret", 400, ""},
		{"list with a limit over 500", http.MethodGet, "/admin/poison?limit=501", "secret", 400, ""},
		{"list in an unknown order", http.MethodGet, "/admin/poison?order=sideways", "secret", 400, ""},
		{"replay a page with a bad limit", http.MethodPost, "/admin/poison/replay?limit=many", "secret", 400, ""},
		{"replay a page without the dry run's token", http.MethodPost, "/admin/poison/replay?reason_code=unknown_order", "secret", 428, ""},
		{"replay every page without a token", http.MethodPost, "/admin/poison/replay", "secret", 428, ""},
		{"replay a page with an empty token", http.MethodPost, "/admin/poison/replay?confirm=", "secret", 400, ""},
		{"replay a page with an upper-case token", http.MethodPost, "/admin/poison/replay?confirm=" + strings.Repeat("A", 64), "secret", 400, ""},
		{"GET on POST /replay/dry-run", http.MethodGet, "/admin/poison/replay/dry-run", "secret", 405, "POST"},
		{"dry run of a page with a bad cursor", http.MethodPost, "/admin/poison/replay/dry-run?cursor=x", "secret", 400, ""},
	}
	e := echo.New()
	g := e.Group("/admin/poison")
	poisonhttp.Routes(g, new(poison.Tool), "secret")
	poisonhttp.DryRunRoute(g, new(poison.Tool), "secret", poison.DryRunConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("%s %s: %d (%s), want %d", tt.method, tt.path, rec.Code, rec.Body, tt.want)
			}
			if allow := rec.Header().Get("Allow"); tt.wantAllow != "" && !strings.Contains(allow, tt.wantAllow) {
				t.Errorf("Allow %q, want it to name %s", allow, tt.wantAllow)
			}
		})
	}
}
