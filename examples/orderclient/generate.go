// Package orderclient is a client of the order API that nobody here wrote:
// oapi-codegen generates it (client.gen.go) from the document the order
// service serves at /openapi.json (openapi.json). See README.md.
package orderclient

//go:generate sh -c "go run ../../services/order openapi > openapi.json"
//go:generate go tool oapi-codegen -config oapi-codegen.yaml openapi.json
