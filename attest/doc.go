// Package attest builds, parses and validates in-toto statements
// (https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md;
// v0.1 read too) and every predicate custody writes or reads. Each
// predicate has one URI constant, one Go type and one parser here, in a
// file of its own:
//
//   - provenance: SLSA Provenance v1 (https://slsa.dev/spec/v1.0/provenance),
//     read-only v0.2, normalised to ProvenanceFacts;
//   - approval.go: custody's approval (PredicateApproval, policy/APPROVAL.md);
//   - review.go: custody's source review (PredicateReview, policy/REVIEW.md);
//   - rebuild.go: custody's rebuild (PredicateRebuild,
//     internal/rebuild/PREDICATE.md);
//   - audit.go: a custody server's audit entries (PredicateAudit);
//   - vsa.go: SLSA Verification Summary v1 (PredicateVSA);
//   - vulns.go: in-toto vulnerability scans v0.1 and v0.2.
//
// Every parser reads untrusted bytes the same way first (decodePredicate):
// a size limit, one JSON object that internal/jsonstrict accepts (no
// duplicate member name, which two parsers could read differently; valid
// UTF-8, so what is stored is what was signed), then the predicate's own
// rules, written in its Parse function's doc. Unknown members are ignored
// (approvals, which are small and custody's own, refuse them). Each parser
// has a Fuzz target that also checks that what it accepts survives a round
// trip.
//
// # Why not the in-toto/attestation Go bindings
//
// github.com/in-toto/attestation/go is already in go.mod (indirect, v1.2.0:
// sigstore-go's bundle package links its v1 Statement), so dependency
// weight is not the reason. Its types are protobuf-generated messages,
// and that is:
//
//   - The predicate of a v1.Statement is a structpb.Struct: a second decode
//     is needed to get a typed predicate, and every JSON number goes through
//     float64 on the way (12345678901234567891 reads back as
//     1.2345678901234567e+19), so what is validated is not what was signed.
//   - Their Validate checks presence only (a subject has a digest, a
//     predicate type is set). custody's rules (lowercase hex of the
//     algorithm's length, size limits, a rebuild's "matched" agreeing with
//     its subjects, full commit IDs in a review) would be written here
//     anyway, on top of getters.
//   - Four of custody's seven predicates (approval, review, rebuild, audit)
//     are custody's own and not in that repository; using the bindings for
//     the other three would give two styles of predicate type side by side.
//   - Generated messages must not be copied, are marshalled with protojson
//     rather than encoding/json, and do not embed in the plain structs that
//     policy evaluation and Rego input are built from.
//
// protojson does refuse duplicate member names and invalid UTF-8, as
// jsonstrict does; that part would have been the same.
package attest
