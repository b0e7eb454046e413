package server

// Matching a record to its audit entry, for the crash tests.
var (
	DeploymentKey = deploymentKey
	IncidentKey   = incidentKey
)
