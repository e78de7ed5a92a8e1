"""webwidget: a server-rendered ChatCaptain chat widget (Flask backend-for-frontend)."""
