output "ferry_service_account_email" {
  description = "Put in the ServiceAccount annotation iam.gke.io/gcp-service-account (deploy/kubernetes overlays)."
  value       = google_service_account.ferry.email
}

output "team_service_accounts" {
  description = "Per team: the service account to map in policies/policy.csv as `g, sa:<email>, team:<name>`."
  value       = { for team, sa in google_service_account.team : team => sa.email }
}

output "bigquery_datasets" {
  description = "The BigQuery datasets Ferry manages, by namespace."
  value       = { for ns, ds in google_bigquery_dataset.namespace : ns => ds.id }
}

output "staging_dataset" {
  description = "warehouse.bigquery.staging_dataset in ferry.toml."
  value       = google_bigquery_dataset.staging.dataset_id
}

output "registry_private_ip" {
  description = "Private IP of the Cloud SQL registry; the NetworkPolicy's egress range must include it."
  value       = google_sql_database_instance.registry.private_ip_address
}

output "secret_ids" {
  description = "Secret Manager secrets to sync into the Kubernetes Secret ferry-secrets."
  value       = { for key, secret in google_secret_manager_secret.ferry : key => secret.secret_id }
}

output "image_repository" {
  description = "Artifact Registry path for ferry-server images."
  value       = "${google_artifact_registry_repository.ferry.location}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.ferry.repository_id}/ferry-server"
}
