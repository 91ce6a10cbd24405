"""The dashboard's widgets: each renders one area of `DashboardState`."""
