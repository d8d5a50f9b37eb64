provider "kubectl" {
  # With no cluster the provider is configured but never called.
  load_config_file  = var.cluster != null
  config_path       = var.cluster == null ? null : var.cluster.kubeconfig
  config_context    = var.cluster == null ? null : var.cluster.context
  apply_retry_count = 3
}
