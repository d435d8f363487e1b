# Ferry's own identity: used by its pods through Workload Identity, never as a key file.
resource "google_service_account" "ferry" {
  account_id   = "ferry-server"
  display_name = "Ferry server (${var.environment})"
  description  = "Runs ferry-server on GKE; BigQuery datasets it manages, its staging dataset, its secrets."
}

# Only the pods' Kubernetes service account may act as it.
resource "google_service_account_iam_member" "ferry_workload_identity" {
  service_account_id = google_service_account.ferry.name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.gke_namespace}/${var.gke_service_account}]"
}

# Project-level roles are the ones BigQuery and Cloud SQL offer no narrower scope for:
# running load/query jobs, and connecting to the registry instance.
resource "google_project_iam_member" "ferry_project_roles" {
  for_each = toset([
    "roles/bigquery.jobUser",
    "roles/cloudsql.client",
    "roles/cloudsql.instanceUser",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.ferry.email}"
}

# One service account per feature team. A team's workloads use it (Workload Identity in their
# own namespace) to get a Google ID token whose audience is Ferry, and call Ferry as
# sa:<email>; policies/policy.csv maps it to the team with `g, sa:<email>, team:<name>`.
resource "google_service_account" "team" {
  for_each     = var.feature_teams
  account_id   = "ferry-team-${each.key}"
  display_name = "Ferry feature team ${each.key}"
  description  = "Calls Ferry for team:${each.key}; reads the views granted to the team."
}
