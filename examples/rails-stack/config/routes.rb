Rails.application.routes.draw do
  # What the healthchecks in compose.yaml and the Dockerfile ask for.
  get "up" => "rails/health#show", as: :rails_health_check
end
