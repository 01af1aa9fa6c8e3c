//go:build !faults

package messaging

// faultsBuilt is false: this binary ignores nothing and installs nothing; a
// FaultConfig that sets a switch is rejected by Config.Validate.
const faultsBuilt = false

// install does nothing in a build without the faults tag.
func (FaultConfig) install(*Node) {}
