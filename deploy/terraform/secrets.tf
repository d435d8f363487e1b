# Secrets Ferry reads, replicated only in the EU region. Terraform creates the containers; the
# HMAC key and the bootstrap admin token are added by an operator (docs/operations.md), so they
# never pass through Terraform state. The registry URL embeds the generated database password:
# keep the state bucket private.
locals {
  secrets = {
    hmac-key     = "HMAC-SHA-256 key for pseudonymized columns (>= 32 bytes)."
    admin-token  = "Bootstrap admin bearer token (admin:platform)."
    registry-url = "postgres:// URL of the registry on Cloud SQL."
  }
}

resource "google_secret_manager_secret" "ferry" {
  for_each  = local.secrets
  secret_id = "${local.name}-${each.key}"
  labels    = merge(local.labels, { purpose = each.key })
  annotations = {
    description = each.value
  }

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_version" "registry_url" {
  secret      = google_secret_manager_secret.ferry["registry-url"].id
  secret_data = "postgres://${google_sql_user.ferry.name}:${random_password.registry.result}@${google_sql_database_instance.registry.private_ip_address}:5432/${google_sql_database.ferry.name}?sslmode=require"
}

resource "google_secret_manager_secret_iam_member" "ferry_reads" {
  for_each  = local.secrets
  secret_id = google_secret_manager_secret.ferry[each.key].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.ferry.email}"
}
