-- AlterTable
ALTER TABLE "LoginFailure" ADD COLUMN     "forgiven" BOOLEAN NOT NULL DEFAULT false;

-- AlterTable
ALTER TABLE "Client" ADD COLUMN     "resources" TEXT NOT NULL DEFAULT '';

-- CreateTable
CREATE TABLE "LoginAddress" (
    "userId" TEXT NOT NULL,
    "address" TEXT NOT NULL,
    "lastSuccessAt" TIMESTAMP(3) NOT NULL,

    CONSTRAINT "LoginAddress_pkey" PRIMARY KEY ("userId","address")
);

-- CreateIndex
CREATE INDEX "LoginAddress_lastSuccessAt_idx" ON "LoginAddress"("lastSuccessAt");

-- AddForeignKey
ALTER TABLE "LoginAddress" ADD CONSTRAINT "LoginAddress_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

