package api

// PackRequest is the body of POST /api/v1/packs: the evidence pack
// (package pack) of Artifact for Environment, made by the server from its
// own state and signed with its audit key.
type PackRequest struct {
	// Artifact is "sha256:HEX".
	Artifact    string `json:"artifact"`
	Environment string `json:"environment"`
	// ValidForSeconds is how long devices accept the pack: 0 means seven
	// days; at most MaxPackValidForSeconds. The trust root's expiry caps
	// it too.
	ValidForSeconds int64 `json:"validForSeconds,omitempty"`
}

// MaxPackValidForSeconds is the longest validity a server gives a pack
// (30 days).
const MaxPackValidForSeconds = 30 * 24 * 3600

// PackMediaType is the content type of the answer of POST /api/v1/packs:
// the pack file (pack.MediaType).
const PackMediaType = "application/vnd.custody.pack.v1+json"
