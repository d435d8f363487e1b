# Container images of ferry-server. Tags are immutable, so a released tag always means one
# digest; untagged images are cleaned up.
resource "google_artifact_registry_repository" "ferry" {
  repository_id = "ferry"
  location      = var.region
  format        = "DOCKER"
  description   = "ferry-server container images"
  labels        = local.labels
  kms_key_name  = var.kms_key_name

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "2592000s"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository_iam_member" "ferry_pulls" {
  location   = google_artifact_registry_repository.ferry.location
  repository = google_artifact_registry_repository.ferry.name
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.ferry.email}"
}
