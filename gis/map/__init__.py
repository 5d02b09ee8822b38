"""What the map page shows besides tiles: its overlay data (``map_layers``) and the parcel
dossier of the side panel (``parcel_dossier``)."""
