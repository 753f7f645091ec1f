-- CreateIndex (the status list rebuild reads WHERE "statusIdx" IS NOT NULL: an index-only range scan)
CREATE INDEX "RevokedAccessToken_statusIdx_idx" ON "RevokedAccessToken"("statusIdx");
