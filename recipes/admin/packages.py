"""Recipe packages in the admin: building one (a background job with progress) and downloading it."""
