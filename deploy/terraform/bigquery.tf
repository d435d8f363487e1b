# One BigQuery dataset per contract namespace. Ferry creates the tables and views inside
# (RegisterDataset) and edits the dataset's `access` list for grants, so it needs dataOwner here
# and nothing project-wide.
resource "google_bigquery_dataset" "namespace" {
  for_each                   = var.bigquery_datasets
  dataset_id                 = each.key
  location                   = var.bigquery_location
  description                = each.value.description
  delete_contents_on_destroy = false
  labels = merge(local.labels, {
    owner-team = each.value.owner_team
  })

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_dataset_iam_member" "ferry_owner" {
  for_each   = var.bigquery_datasets
  dataset_id = google_bigquery_dataset.namespace[each.key].dataset_id
  role       = "roles/bigquery.dataOwner"
  member     = "serviceAccount:${google_service_account.ferry.email}"
}

# Authorized views for consumer teams live in one dataset per team, which Ferry fills.
resource "google_bigquery_dataset" "consumer" {
  for_each                   = var.feature_teams
  # Ferry names it after the principal: team:data-eng -> ferry_consumer_team_data_eng.
  dataset_id                 = "ferry_consumer_team_${replace(each.key, "-", "_")}"
  location                   = var.bigquery_location
  description                = "Views Ferry has granted to team ${each.key}."
  delete_contents_on_destroy = false
  labels = merge(local.labels, {
    consumer-team = each.key
  })

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_dataset_iam_member" "ferry_consumer_owner" {
  for_each   = var.feature_teams
  dataset_id = google_bigquery_dataset.consumer[each.key].dataset_id
  role       = "roles/bigquery.dataOwner"
  member     = "serviceAccount:${google_service_account.ferry.email}"
}

# Each team reads the views Ferry put in its own consumer dataset, and nothing else.
resource "google_bigquery_dataset_iam_member" "team_reads_its_views" {
  for_each   = var.feature_teams
  dataset_id = google_bigquery_dataset.consumer[each.key].dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.team[each.key].email}"
}

# Per-publication staging tables: Ferry loads each cleaned partition here (a resumable-upload load
# job), then copies it into the raw table and views in one transaction and drops it. Tables that
# outlive a crashed publish expire on their own.
resource "google_bigquery_dataset" "staging" {
  dataset_id                  = "ferry_staging"
  location                    = var.bigquery_location
  description                 = "Ferry's per-publication staging tables; each expires on its own."
  default_table_expiration_ms = var.staging_expiration_hours * 3600 * 1000
  delete_contents_on_destroy  = true
  labels                      = local.labels

  dynamic "default_encryption_configuration" {
    for_each = var.kms_key_name == null ? [] : [var.kms_key_name]
    content {
      kms_key_name = default_encryption_configuration.value
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_bigquery_dataset_iam_member" "ferry_stages" {
  dataset_id = google_bigquery_dataset.staging.dataset_id
  role       = "roles/bigquery.dataOwner"
  member     = "serviceAccount:${google_service_account.ferry.email}"
}
